/* msg fuzz target: msg_decode of send requests and stored messages under
 * the default and tight limits, the encode/decode round trip the spool
 * relies on, and the printed forms, which must carry no live control. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "msg.h"
#include "show.h"

#include "check.h"

/* Small enough that an 8 KiB input crosses every one of them; total
 * keeps the margin config.c gives it over body. */
static const struct limits tight = { 200, 24, 16, 3, 24, 200 + 320 };

static int
same_str(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	return strcmp(a, b) == 0;
}

static void
check_same(const struct msg *a, const struct msg *b)
{
	size_t i;

	CHECK(strcmp(a->id, b->id) == 0 && strcmp(a->ts, b->ts) == 0);
	CHECK(same_str(a->from, b->from) && same_str(a->to, b->to));
	CHECK(same_str(a->body, b->body));
	CHECK(same_str(a->scope, b->scope) && same_str(a->thread, b->thread));
	CHECK(a->urgent == b->urgent && a->nrefs == b->nrefs);
	for (i = 0; i < a->nrefs; i++)
		CHECK(strcmp(a->refs[i], b->refs[i]) == 0);
}

/* Decode one code point of valid UTF-8 at s. */
static unsigned long
cp_at(const unsigned char *s, int k)
{
	static const unsigned char mask[5] = { 0, 0x7f, 0x1f, 0x0f, 0x07 };
	unsigned long cp = s[0] & mask[k];
	int i;

	for (i = 1; i < k; i++)
		cp = cp << 6 | (s[i] & 0x3f);
	return cp;
}

static int
is_selector(unsigned long cp)
{
	return (cp >= 0xfe00 && cp <= 0xfe0f) ||
	    (cp >= 0xe0100 && cp <= 0xe01ef);
}

/* The code point at i (valid UTF-8), 0 at the end. */
static unsigned long
next_cp(const struct buf *b, size_t i)
{
	const unsigned char *s = (const unsigned char *)b->p;

	return i < b->len ? cp_at(s + i, utf8_seqlen(s + i, b->len - i)) : 0;
}

/* Printed text reaches terminals and model prompts: it must be UTF-8
 * with no control but newline and tab, no C1 and no bidi control, no
 * character that shows nothing; a variation selector only alone after a
 * visible character, a zero width joiner only between two others. */
static void
check_clean(const struct buf *b)
{
	const unsigned char *s = (const unsigned char *)b->p;
	unsigned long prev = 0;
	size_t i = 0;

	CHECK(b->len == strlen(b->p));
	CHECK(!memchr(s, 0x1b, b->len) && !memchr(s, 0x07, b->len));
	CHECK(utf8_valid(b->p, b->len));
	while (i < b->len) {
		int k = utf8_seqlen(s + i, b->len - i);
		unsigned long cp = cp_at(s + i, k), next;
		next = next_cp(b, i + (size_t)k);
		CHECK(cp >= 0x20 || cp == '\n' || cp == '\t');
		CHECK(!(cp >= 0x7f && cp <= 0x9f));
		CHECK(cp != 0x202e && cp != 0x202d && cp != 0x200e &&
		    cp != 0x200f && cp != 0x061c && cp != 0xfeff);
		CHECK(!(cp >= 0x202a && cp <= 0x202e));
		CHECK(!(cp >= 0x2066 && cp <= 0x2069));
		CHECK(!(cp >= 0x200b && cp <= 0x200c) && cp != 0x2028 &&
		    cp != 0x2029 && !(cp >= 0x2060 && cp <= 0x206f));
		CHECK(cp != 0xad && cp != 0x034f && cp != 0x115f &&
		    cp != 0x1160 && cp != 0x3164 && cp != 0xffa0 &&
		    cp != 0x180e && !(cp >= 0xfff9 && cp <= 0xfffb) &&
		    !(cp >= 0x1d173 && cp <= 0x1d17a));
		CHECK(!(cp >= 0xe0000 && cp <= 0xe007f));
		CHECK(cp != 0x200d || (prev >= 0xa9 && next >= 0xa9));
		if (is_selector(cp))
			CHECK(prev > ' ' && !is_selector(prev) &&
			    !is_selector(next) &&
			    (cp < 0xe0100 || prev >= 0x3400));
		prev = cp;
		i += (size_t)k;
	}
}

static void
check_show(const struct msg *m)
{
	static const char fence[] = "f3nc3-0123456789";
	struct buf b = BUF_INIT;
	size_t max[] = { 0, 1, 7, 40, 119 };
	size_t i;

	show_human(&b, m);
	check_clean(&b);
	CHECK(b.len && b.p[b.len - 1] == '\n');
	buf_reset(&b);
	show_brief(&b, m);
	check_clean(&b);
	CHECK(memchr(b.p, '\n', b.len) == b.p + b.len - 1); /* one line */
	for (i = 0; i < sizeof max / sizeof max[0]; i++) {
		buf_reset(&b);
		show_hook(&b, m, fence, max[i]);
		check_clean(&b);
		/* The body within max, the detail lines within max / 2, and
		 * the head and fence lines, whatever the message holds. */
		CHECK(!max[i] || b.len <= max[i] + max[i] / 2 + 1024);
	}
	buf_reset(&b);
	show_text(&b, m->body, 0);
	check_clean(&b);
	CHECK(!memchr(b.p, '\n', b.len) && !memchr(b.p, '\t', b.len));
	buf_reset(&b);
	show_text(&b, m->body, 1);
	check_clean(&b);
	buf_free(&b);
}

/* What the spool stores must decode to what was stored. */
static void
check_roundtrip(const struct msg *m, const struct limits *l)
{
	struct buf b = BUF_INIT, again = BUF_INIT;
	struct msg d, c;
	struct err e;

	msg_encode(m, &b);
	buf_addc(&b, '\n');
	if (b.len <= l->total) { /* spool-fs refuses anything longer */
		if (msg_decode(b.p, b.len, 0, l, &d, &e) < 0) {
			fprintf(stderr, "re-decode: %s\n%s", e.msg, b.p);
			CHECK(0);
		}
		check_same(m, &d);
		msg_encode(&d, &again);
		buf_addc(&again, '\n');
		CHECK(again.len == b.len && memcmp(again.p, b.p, b.len) == 0);
		msg_free(&d);
	}
	msg_copy(&c, m);
	check_same(m, &c);
	msg_free(&c);
	buf_free(&b);
	buf_free(&again);
}

static void
one(const char *s, size_t n, int request, const struct limits *l)
{
	struct msg m;
	struct err e;

	memset(&e, 0, sizeof e);
	if (msg_decode(s, n, request, l, &m, &e) < 0) {
		CHECK(e.code == BCH_PERM && e.msg[0]);
		CHECK(!m.body && !m.to && !m.from && !m.refs);
		return;
	}
	CHECK(msg_check(&m, l, &e) == 0);
	CHECK(m.to && (m.to[0] == '@' || m.to[0] == '#') &&
	    name_valid(m.to + 1));
	CHECK(m.body && *m.body);
	CHECK(!m.scope || *m.scope);
	CHECK(!m.thread || *m.thread);
	if (m.from)
		CHECK(name_valid(m.from));
	if (m.id[0])
		CHECK(id_valid(m.id));
	if (request) {
		/* As bch-send and spool_send complete a request. */
		free(m.from);
		m.from = strdup("fuzz.agent");
		CHECK(m.from);
		if (!m.id[0])
			strcpy(m.id, "0b7e7c2e-6a43-4c1e-9f4b-6a1d2e3f4a5b");
		strcpy(m.ts, "2026-06-12T12:00:00.000Z");
	}
	CHECK(m.from);
	check_roundtrip(&m, l);
	check_show(&m);
	msg_free(&m);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct limits dflt;

	limits_default(&dflt);
	one((const char *)data, size, 1, &dflt);
	one((const char *)data, size, 0, &dflt);
	one((const char *)data, size, 1, &tight);
	one((const char *)data, size, 0, &tight);
	return 0;
}
