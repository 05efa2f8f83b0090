/* msg: names, limits, decoding and encoding of messages. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "json.h"
#include "msg.h"

void
limits_default(struct limits *l)
{
	l->body = 64 * 1024;
	l->scope = 512;
	l->thread = 128;
	l->nrefs = 32;
	l->ref = 1024;
	l->total = 96 * 1024;
}

static int
namechar(int c, int first)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9'))
		return 1;
	return !first && (c == '.' || c == '_' || c == '-');
}

int
name_valid(const char *s)
{
	size_t i;

	if (!s || !namechar((unsigned char)s[0], 1))
		return 0;
	for (i = 1; s[i]; i++)
		if (i >= NAME_MAX_LEN || !namechar((unsigned char)s[i], 0))
			return 0;
	return 1;
}

int
id_valid(const char *s)
{
	return name_valid(s);
}

int
uuid_valid(const char *s)
{
	size_t i;

	if (strlen(s) != 36 || s[14] != '4' || !strchr("89ab", s[19]))
		return 0;
	for (i = 0; i < 36; i++) {
		int dash = i == 8 || i == 13 || i == 18 || i == 23;
		if (dash ? s[i] != '-' : !strchr("0123456789abcdef", s[i]) || !s[i])
			return 0;
	}
	return 1;
}

static void
quote_name(char *out, size_t outsz, const char *in)
{
	size_t i, w = 0;

	/* Show a rejected name without passing its bytes to a terminal. */
	for (i = 0; in[i] && w + 5 < outsz && i < 80; i++) {
		unsigned char c = (unsigned char)in[i];
		if (c < 0x20 || c == 0x7f || c == '"' || c == '\\')
			w += (size_t)snprintf(out + w, outsz - w, "\\x%02x", c);
		else
			out[w++] = (char)c;
	}
	out[w] = 0;
}

int
target_parse(const char *in, char *out, size_t outsz, struct err *e)
{
	char shown[400];
	char sigil = '@';
	const char *name = in;

	if (in[0] == '@' || in[0] == '#') {
		sigil = in[0];
		name = in + 1;
	}
	if (!name_valid(name)) {
		quote_name(shown, sizeof shown, in);
		return err_set(e, BCH_PERM,
		    "invalid target \"%s\" — use @agent or #channel, names "
		    "of letters, digits, '.', '_' and '-' (at most 64)", shown);
	}
	snprintf(out, outsz, "%c%s", sigil, name);
	return 0;
}

/* Names, ids and the like are decoded exactly (json_string): a \u0000 or
 * a lone surrogate there is refused, as a name is a path component. Free
 * text (body, scope, thread, refs) is read with json_text, which makes
 * each U+FFFD: the first implementation's JSON.stringify writes them, and
 * a message its sender saw delivered must not be set aside as corrupt. */
static int
get_str(const struct json *j, const char *key, size_t max, char **out,
    int required, int text, struct err *e)
{
	int i = json_get(j, 0, key);

	*out = NULL;
	if (i < 0 && required)
		return err_set(e, BCH_PERM, "missing field \"%s\"", key);
	/* A required field given as null is there, but no string. */
	if (i < 0 || (json_is(j, i, "null") && !required))
		return 0;
	if (j->t[i].type != JSON_STRING)
		return err_set(e, BCH_PERM, "field \"%s\" must be a string", key);
	if ((text ? json_text : json_string)(j, i, max, out, NULL) < 0)
		return err_set(e, BCH_PERM, text ?
		    "field \"%s\" is over its limit of %zu bytes" :
		    "field \"%s\" is over its limit of %zu bytes or holds a "
		    "\\u0000 or lone surrogate escape", key, max);
	if (!**out && !required) {
		free(*out);
		*out = NULL; /* writers omit empty optional fields */
	}
	return 0;
}

static int
get_refs(const struct json *j, const struct limits *l, struct msg *m,
    struct err *e)
{
	int a = json_get(j, 0, "refs"), i, k;

	if (a < 0 || json_is(j, a, "null"))
		return 0;
	if (j->t[a].type != JSON_ARRAY)
		return err_set(e, BCH_PERM, "field \"refs\" must be an array");
	if ((size_t)j->t[a].size > l->nrefs)
		return err_set(e, BCH_PERM, "too many refs (%d, at most %zu)",
		    j->t[a].size, l->nrefs);
	m->refs = xcalloc((size_t)j->t[a].size + 1, sizeof *m->refs);
	for (k = 0, i = a + 1; k < j->t[a].size; k++, i = json_next(j, i)) {
		if (j->t[i].type != JSON_STRING ||
		    json_text(j, i, l->ref, &m->refs[m->nrefs], NULL) < 0)
			return err_set(e, BCH_PERM,
			    "each ref must be a string of at most %zu bytes",
			    l->ref);
		if (!*m->refs[m->nrefs]) {
			free(m->refs[m->nrefs]);
			m->refs[m->nrefs] = NULL;
		} else
			m->nrefs++;
	}
	return 0;
}

/* "priority": "normal" or "urgent"; a request may leave it out (or
 * null), a stored message may not. */
static int
get_priority(const struct json *j, int request, struct msg *m, struct err *e)
{
	int i = json_get(j, 0, "priority");
	char *s = NULL;

	if (i < 0 || json_is(j, i, "null"))
		return request ? 0 : err_set(e, BCH_PERM,
		    "missing field \"priority\"");
	if (get_str(j, "priority", 16, &s, 1, 0, e) < 0)
		return -1;
	if (strcmp(s, "urgent") == 0)
		m->urgent = 1;
	else if (strcmp(s, "normal") != 0) {
		free(s);
		return err_set(e, BCH_PERM,
		    "priority must be \"normal\" or \"urgent\"");
	}
	free(s);
	return 0;
}

/* A field given twice is read as the first by one reader and as the
 * last by another (JSON.parse, jq): a message must not be one thing to
 * the tool that checked it and another to the one that sends it. */
static int
once_each(const struct json *j, struct err *e)
{
	static const char *const fields[] = { "to", "body", "scope", "thread",
	    "refs", "priority", "id", "ts", "from" };
	size_t i;

	for (i = 0; i < sizeof fields / sizeof *fields; i++)
		if (json_get(j, 0, fields[i]) != json_get_last(j, 0, fields[i]))
			return err_set(e, BCH_PERM, "field \"%s\" given twice "
			    "(JSON readers differ on which one counts)", fields[i]);
	return 0;
}

static int
decode_fields(const struct json *j, int request, const struct limits *l,
    struct msg *m, struct err *e)
{
	char *s = NULL, to[NAME_MAX_LEN + 3];

	if (once_each(j, e) < 0)
		return -1;
	if (get_str(j, "to", 80, &s, 1, 0, e) < 0)
		return -1;
	if (target_parse(s, to, sizeof to, e) < 0) {
		free(s);
		return -1;
	}
	free(s);
	m->to = xstrdup(to);
	if (get_str(j, "body", l->body, &m->body, 1, 1, e) < 0) {
		if (json_get(j, 0, "body") >= 0 &&
		    j->t[json_get(j, 0, "body")].type == JSON_STRING)
			err_status(e, 413);
		return -1;
	}
	if (!*m->body)
		return err_set(e, BCH_PERM, "empty body — say something");
	if (get_str(j, "scope", l->scope, &m->scope, 0, 1, e) < 0 ||
	    get_str(j, "thread", l->thread, &m->thread, 0, 1, e) < 0 ||
	    get_refs(j, l, m, e) < 0)
		return -1;
	if (get_priority(j, request, m, e) < 0)
		return -1;
	if (get_str(j, "id", ID_MAX_LEN, &s, !request, 0, e) < 0)
		return -1;
	if (s) {
		if (request ? !uuid_valid(s) : !id_valid(s)) {
			free(s);
			return err_set(e, BCH_PERM, request ? "a client-chosen id "
			    "must be a lowercase UUID v4" : "invalid message id");
		}
		snprintf(m->id, sizeof m->id, "%s", s);
		free(s);
	}
	if (get_str(j, "ts", 39, &s, !request, 0, e) < 0)
		return -1;
	if (s) {
		snprintf(m->ts, sizeof m->ts, "%s", s);
		free(s);
	}
	if (get_str(j, "from", NAME_MAX_LEN, &m->from, !request, 0,
	    e) < 0)
		return -1;
	if (m->from && !name_valid(m->from))
		return err_set(e, BCH_PERM, "invalid sender name");
	return 0;
}

size_t
msg_request_max(const struct limits *l)
{
	return l->total > (SIZE_MAX - 64 * 1024) / 6 ? SIZE_MAX :
	    6 * l->total + 64 * 1024;
}

int
msg_decode(const char *s, size_t n, int request, const struct limits *l,
    struct msg *m, struct err *e)
{
	struct json j;
	const char *why = NULL;
	int rc;

	memset(m, 0, sizeof *m);
	if (n > l->total) {
		err_set(e, BCH_PERM,
		    "message is %zu bytes, over the limit of %zu", n, l->total);
		return err_status(e, 413);
	}
	if (json_parse(&j, s, n, 16, &why) < 0)
		return err_set(e, BCH_PERM, "malformed JSON: %s", why);
	if (j.t[0].type != JSON_OBJECT) {
		json_free(&j);
		return err_set(e, BCH_PERM, "malformed message: not an object");
	}
	rc = decode_fields(&j, request, l, m, e);
	json_free(&j);
	if (rc < 0)
		msg_free(m);
	return rc;
}

int
msg_check(const struct msg *m, const struct limits *l, struct err *e)
{
	size_t i;

	if (!m->body || !*m->body)
		return err_set(e, BCH_PERM, "empty body — say something");
	if (strlen(m->body) > l->body) {
		err_set(e, BCH_PERM,
		    "body is %zu bytes, over the limit of %zu — send a path "
		    "or URL in --ref instead", strlen(m->body), l->body);
		return err_status(e, 413);
	}
	if (!utf8_valid(m->body, strlen(m->body)))
		return err_set(e, BCH_PERM, "body is not valid UTF-8");
	if (m->scope && (strlen(m->scope) > l->scope ||
	    !utf8_valid(m->scope, strlen(m->scope))))
		return err_set(e, BCH_PERM,
		    "scope must be UTF-8 of at most %zu bytes", l->scope);
	if (m->thread && (strlen(m->thread) > l->thread ||
	    !utf8_valid(m->thread, strlen(m->thread))))
		return err_set(e, BCH_PERM,
		    "thread must be UTF-8 of at most %zu bytes", l->thread);
	if (m->nrefs > l->nrefs)
		return err_set(e, BCH_PERM, "too many refs (%zu, at most %zu)",
		    m->nrefs, l->nrefs);
	for (i = 0; i < m->nrefs; i++)
		if (strlen(m->refs[i]) > l->ref ||
		    !utf8_valid(m->refs[i], strlen(m->refs[i])))
			return err_set(e, BCH_PERM,
			    "each ref must be UTF-8 of at most %zu bytes", l->ref);
	return 0;
}

static void
put_field(struct buf *b, const char *key, const char *val)
{
	buf_addc(b, ',');
	json_put_string(b, key, strlen(key));
	buf_addc(b, ':');
	json_put_string(b, val, strlen(val));
}

void
msg_encode(const struct msg *m, struct buf *b)
{
	size_t i;

	buf_adds(b, "{\"id\":");
	json_put_string(b, m->id, strlen(m->id));
	put_field(b, "from", m->from ? m->from : "");
	put_field(b, "to", m->to ? m->to : "");
	put_field(b, "body", m->body ? m->body : "");
	put_field(b, "priority", m->urgent ? "urgent" : "normal");
	if (m->scope && *m->scope)
		put_field(b, "scope", m->scope);
	if (m->thread && *m->thread)
		put_field(b, "thread", m->thread);
	if (m->nrefs) {
		buf_adds(b, ",\"refs\":[");
		for (i = 0; i < m->nrefs; i++) {
			if (i)
				buf_addc(b, ',');
			json_put_string(b, m->refs[i], strlen(m->refs[i]));
		}
		buf_addc(b, ']');
	}
	put_field(b, "ts", m->ts);
	buf_addc(b, '}');
}

void
msg_free(struct msg *m)
{
	size_t i;

	free(m->from);
	free(m->to);
	free(m->body);
	free(m->scope);
	free(m->thread);
	for (i = 0; i < m->nrefs; i++)
		free(m->refs[i]);
	free(m->refs);
	memset(m, 0, sizeof *m);
}

static char *
dup_or_null(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

void
msg_copy(struct msg *dst, const struct msg *src)
{
	size_t i;

	*dst = *src;
	dst->from = dup_or_null(src->from);
	dst->to = dup_or_null(src->to);
	dst->body = dup_or_null(src->body);
	dst->scope = dup_or_null(src->scope);
	dst->thread = dup_or_null(src->thread);
	dst->refs = xcalloc(src->nrefs + 1, sizeof *dst->refs);
	for (i = 0; i < src->nrefs; i++)
		dst->refs[i] = xstrdup(src->refs[i]);
}

/* Make r sort after the id this process made last, so that messages
 * of one millisecond, ordered by ts then id, keep the order they were
 * sent in: a random id that would sort before it takes its first 32
 * bits plus one instead, and keeps 90 random bits. */
static void
later_than(unsigned char r[16])
{
	static unsigned char last[16];
	static int have;
	int i;

	if (have && memcmp(r, last, sizeof last) <= 0 &&
	    memcmp(last, "\xff\xff\xff\xff", 4) != 0) {
		memcpy(r, last, 4);
		for (i = 3; i >= 0 && ++r[i] == 0; i--)
			;
	}
	memcpy(last, r, sizeof last);
	have = 1;
}

int
uuid_v4(char out[37])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char r[16];
	size_t got = 0;
	int i, w = 0;

	while (got < sizeof r) {
		ssize_t k = getrandom(r + got, sizeof r - got, 0);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		got += (size_t)k;
	}
	r[6] = (unsigned char)((r[6] & 0x0f) | 0x40);
	r[8] = (unsigned char)((r[8] & 0x3f) | 0x80);
	later_than(r);
	for (i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[w++] = '-';
		out[w++] = hex[r[i] >> 4];
		out[w++] = hex[r[i] & 15];
	}
	out[w] = 0;
	return 0;
}

void
ts_now(char out[25])
{
	struct timespec t;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &t);
	gmtime_r(&t.tv_sec, &tm);
	if (strftime(out, 25, "%Y-%m-%dT%H:%M:%S", &tm) != 19)
		memcpy(out, "1970-01-01T00:00:00", 20);
	snprintf(out + 19, 6, ".%03uZ", (unsigned)(t.tv_nsec / 1000000) % 1000);
}
