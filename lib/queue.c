/* queue: the order of PROTOCOL.md 2, for a long inbox, in little memory.
 *
 * Design rationale. Nearly every message has a ts of the form
 * "YYYY-MM-DDTHH:MM:SS.mmmZ" and a lowercase UUID for id, as every writer
 * makes them. Such a message is kept as a 24-byte key: the 17 digits of
 * ts as one number and the 32 hex digits of id as 16 bytes, both of which
 * compare as their strings do. Anything else (a hand-made file, another
 * writer's ts) is kept as its strings, in a list of its own. The keys are
 * sorted in place (heapsort: qsort(3) may copy the whole array), then
 * written again over themselves as a byte string, each ts as the step
 * from the one before: about 17 bytes a key where many share a
 * millisecond, never more than 24. The two lists are merged as they are
 * read, comparing the strings, so the order is exactly strcmp's. */
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "queue.h"

/* Keys are first allocated this many at a time (192 KiB): a block that
 * size is mapped (its pages cost nothing until used) and grown by
 * mremap, where doubling from a small block would leave each copy
 * behind, resident, in the heap. */
#define KEYS_FIRST 8192

struct qkey {
	uint64_t ts;          /* the 17 digits of ts */
	unsigned char id[16]; /* the 32 hex digits of id */
};

static const char ts_form[] = "0000-00-00T00:00:00.000Z";

/* A ts of the usual form as a number under 2^56 (the years before 7206),
 * so that a step between two takes at most 8 bytes of LEB128. */
static int
ts_pack(const char *ts, uint64_t *v)
{
	size_t i;

	*v = 0;
	for (i = 0; i < sizeof ts_form - 1; i++) {
		if (ts_form[i] != '0') {
			if (ts[i] != ts_form[i])
				return 0;
		} else if (ts[i] >= '0' && ts[i] <= '9') {
			*v = *v * 10 + (uint64_t)(ts[i] - '0');
		} else {
			return 0;
		}
	}
	return ts[i] == 0 && *v < (uint64_t)1 << 56;
}

static void
ts_unpack(uint64_t v, char *ts)
{
	size_t i = sizeof ts_form - 1;

	ts[i] = 0;
	while (i-- > 0) {
		if (ts_form[i] != '0') {
			ts[i] = ts_form[i];
		} else {
			ts[i] = (char)('0' + v % 10);
			v /= 10;
		}
	}
}

static int
dash_at(size_t i)
{
	return i == 8 || i == 13 || i == 18 || i == 23;
}

/* A lowercase UUID (any version) as 16 bytes. */
static int
id_pack(const char *id, unsigned char *out)
{
	size_t i, w = 0;
	int x;

	for (i = 0; i < 36; i++) {
		if (dash_at(i)) {
			if (id[i] != '-')
				return 0;
			continue;
		}
		/* Lowercase only: id_unpack() writes it back so. */
		if ((id[i] >= 'A' && id[i] <= 'F') ||
		    (x = hex_digit(id[i])) < 0)
			return 0;
		if (w % 2 == 0)
			out[w / 2] = (unsigned char)(x << 4);
		else
			out[w / 2] |= (unsigned char)x;
		w++;
	}
	return id[i] == 0;
}

static void
id_unpack(const unsigned char *in, char *id)
{
	static const char digit[] = "0123456789abcdef";
	size_t i, w = 0;

	for (i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			id[w++] = '-';
		id[w++] = digit[in[i] >> 4];
		id[w++] = digit[in[i] & 15];
	}
	id[w] = 0;
}

void
queue_add(struct queue *q, const char *ts, const char *id)
{
	struct qkey k;
	size_t tl;

	q->n++;
	if (ts_pack(ts, &k.ts) && id_pack(id, k.id)) {
		if (q->nk == q->capk) {
			q->capk = q->capk ? q->capk * 2 : KEYS_FIRST;
			q->k = xrealloc(q->k, q->capk * sizeof *q->k);
		}
		q->k[q->nk++] = k;
		return;
	}
	if (q->nodd == q->capodd) {
		q->capodd = q->capodd ? q->capodd * 2 : 16;
		q->odd = xrealloc(q->odd, q->capodd * sizeof *q->odd);
	}
	tl = strlen(ts);
	q->odd[q->nodd] = xmalloc(tl + strlen(id) + 2);
	memcpy(q->odd[q->nodd], ts, tl + 1);
	strcpy(q->odd[q->nodd] + tl + 1, id);
	q->nodd++;
}

static int
key_cmp(const struct qkey *a, const struct qkey *b)
{
	if (a->ts != b->ts)
		return a->ts < b->ts ? -1 : 1;
	return memcmp(a->id, b->id, sizeof a->id);
}

static int
odd_cmp(const void *pa, const void *pb)
{
	const char *a = *(char *const *)pa, *b = *(char *const *)pb;
	int c = strcmp(a, b);

	return c ? c : strcmp(a + strlen(a) + 1, b + strlen(b) + 1);
}

static void
sift(struct qkey *k, size_t i, size_t n)
{
	struct qkey t;
	size_t c;

	while ((c = 2 * i + 1) < n) {
		if (c + 1 < n && key_cmp(&k[c], &k[c + 1]) < 0)
			c++;
		if (key_cmp(&k[i], &k[c]) >= 0)
			return;
		t = k[i];
		k[i] = k[c];
		k[c] = t;
		i = c;
	}
}

/* Write the sorted keys over themselves: key i's bytes end at or before
 * 24 * (i + 1), where key i + 1 starts, so none is overwritten unread. */
static void
pack(struct queue *q)
{
	unsigned char *p = (unsigned char *)q->k;
	uint64_t prev = 0, d;
	size_t i, w = 0;
	struct qkey k;

	if (!q->nk)
		return;
	for (i = 0; i < q->nk; i++) {
		k = q->k[i];
		for (d = k.ts - prev; d >= 0x80; d >>= 7)
			p[w++] = (unsigned char)(d | 0x80);
		p[w++] = (unsigned char)d;
		memcpy(p + w, k.id, sizeof k.id);
		w += sizeof k.id;
		prev = k.ts;
	}
	q->packed = xrealloc(p, w); /* gives back the rest */
	q->k = NULL;
	q->plen = w;
}

void
queue_sort(struct queue *q)
{
	struct qkey t;
	size_t i, n = q->nk;

	for (i = n / 2; i-- > 0;)
		sift(q->k, i, n);
	while (n > 1) {
		t = q->k[0];
		q->k[0] = q->k[--n];
		q->k[n] = t;
		sift(q->k, 0, n);
	}
	pack(q);
	if (q->nodd > 1)
		qsort(q->odd, q->nodd, sizeof *q->odd, odd_cmp);
}

/* The key at pos: its ts, and where its id starts. */
static size_t
key_at(const struct queue *q, uint64_t *ts)
{
	size_t p = q->pos;
	uint64_t d = 0;
	unsigned shift;

	for (shift = 0; q->packed[p] & 0x80; shift += 7)
		d |= (uint64_t)(q->packed[p++] & 0x7f) << shift;
	d |= (uint64_t)q->packed[p++] << shift;
	*ts = q->ts + d;
	return p;
}

/* Does the message (ts, id) come after the odd one o ("<ts>\0<id>")? */
static int
after(const char *ts, const char *id, const char *o)
{
	int c = strcmp(ts, o);

	return c ? c > 0 : strcmp(id, o + strlen(o) + 1) > 0;
}

int
queue_next(struct queue *q, char ts[40], char id[ID_MAX_LEN + 1])
{
	const char *o = q->iodd < q->nodd ? q->odd[q->iodd] : NULL;
	uint64_t kts = 0;
	size_t idat = 0;

	if (q->pos < q->plen) {
		idat = key_at(q, &kts);
		ts_unpack(kts, ts);
		id_unpack(q->packed + idat, id);
	}
	if (o && (q->pos == q->plen || after(ts, id, o))) {
		memcpy(ts, o, strlen(o) + 1);
		o += strlen(o) + 1;
		memcpy(id, o, strlen(o) + 1);
		q->iodd++;
	} else if (q->pos < q->plen) {
		q->ts = kts;
		q->pos = idat + 16;
	} else {
		return 0;
	}
	return 1;
}

void
queue_free(struct queue *q)
{
	size_t i;

	for (i = 0; i < q->nodd; i++)
		free(q->odd[i]);
	free(q->odd);
	free(q->k);
	free(q->packed);
	memset(q, 0, sizeof *q);
}
