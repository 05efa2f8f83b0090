/* invite: encode and decode bch1- invites (PROTOCOL.md 6).
 *
 * Design rationale. An invite arrives by chat or mail, so it is hostile
 * input: it is bounded, decoded strictly (a stray character is an error,
 * not skipped; only white space, where a line was wrapped, is), parsed by the strict JSON validator, and every field is
 * checked before anything uses it. Error texts never echo the invite:
 * it carries the room token, and it may carry control characters. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "invite.h"
#include "json.h"
#include "msg.h"
#include "url.h"

/* Clear a secret; volatile so that the compiler keeps the stores. */
static void
wipe(void *p, size_t n)
{
	volatile unsigned char *v = p;

	while (n--)
		*v++ = 0;
}

static const char b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

void
b64url_encode(struct buf *b, const void *p, size_t n)
{
	const unsigned char *s = p;
	size_t i;

	for (i = 0; i + 2 < n; i += 3) {
		unsigned v = (unsigned)s[i] << 16 | (unsigned)s[i + 1] << 8 |
		    s[i + 2];
		buf_addc(b, b64[v >> 18 & 63]);
		buf_addc(b, b64[v >> 12 & 63]);
		buf_addc(b, b64[v >> 6 & 63]);
		buf_addc(b, b64[v & 63]);
	}
	if (n - i == 1) {
		unsigned v = (unsigned)s[i] << 16;
		buf_addc(b, b64[v >> 18 & 63]);
		buf_addc(b, b64[v >> 12 & 63]);
	} else if (n - i == 2) {
		unsigned v = (unsigned)s[i] << 16 | (unsigned)s[i + 1] << 8;
		buf_addc(b, b64[v >> 18 & 63]);
		buf_addc(b, b64[v >> 12 & 63]);
		buf_addc(b, b64[v >> 6 & 63]);
	}
}

static int
b64val(int c)
{
	const char *p;

	if (!c)
		return -1;
	p = strchr(b64, c);
	return p ? (int)(p - b64) : -1;
}

int
b64url_decode(const char *s, size_t n, struct buf *out)
{
	unsigned v = 0;
	size_t i, bits = 0;

	while (n > 0 && s[n - 1] == '=')
		n--;
	if (n % 4 == 1)
		return -1;
	for (i = 0; i < n; i++) {
		int d = b64val((unsigned char)s[i]);
		if (d < 0)
			return -1;
		v = (v << 6 | (unsigned)d) & 0xffffff;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			buf_addc(out, (char)(v >> bits & 0xff));
		}
	}
	/* The leftover bits of a canonical encoding are zero. */
	if (bits && (v & ((1u << bits) - 1)))
		return -1;
	return 0;
}

void
invite_encode(const struct invite *inv, struct buf *b)
{
	struct buf j = BUF_INIT;
	size_t i;

	buf_adds(&j, "{\"url\":");
	json_put_string(&j, inv->url, strlen(inv->url));
	buf_adds(&j, ",\"token\":");
	json_put_string(&j, inv->token, strlen(inv->token));
	if (inv->nchannels) {
		buf_adds(&j, ",\"channels\":[");
		for (i = 0; i < inv->nchannels; i++) {
			if (i)
				buf_addc(&j, ',');
			json_put_string(&j, inv->channels[i],
			    strlen(inv->channels[i]));
		}
		buf_addc(&j, ']');
	}
	if (inv->room) {
		buf_adds(&j, ",\"room\":");
		json_put_string(&j, inv->room, strlen(inv->room));
	}
	if (inv->pin) {
		buf_adds(&j, ",\"pin\":");
		json_put_string(&j, inv->pin, strlen(inv->pin));
	}
	buf_addc(&j, '}');
	buf_adds(b, INVITE_PREFIX);
	b64url_encode(b, j.p, j.len);
	buf_free(&j);
}

int
invite_url_valid(const char *url)
{
	struct url u;
	const char *host;

	if (strncmp(url, "https://", 8) == 0)
		host = url + 8;
	else if (strncmp(url, "http://", 7) == 0)
		host = url + 7;
	else
		return 0;
	/* ASCII only (a name beyond it is written in punycode): the url is
	 * shown as it is, and U+202E or a C1 control would disguise it. */
	if (!url_ascii(url))
		return 0;
	/* No user:password@: it is no host, and an invite is passed on. */
	if (memchr(host, '@', strcspn(host, "/")))
		return 0;
	/* What the client will make of it, so that an invite bch-invite
	 * makes is one bch join can use. */
	return strlen(url) <= 2048 && url_parse(&u, url, NULL) == 0;
}

int
invite_pin_valid(const char *pin)
{
	size_t i;

	for (i = 0; pin[i]; i++)
		if (!isxdigit((unsigned char)pin[i]))
			return 0;
	return i == 64;
}

int
invite_channel(const char *in, char *out, size_t outsz)
{
	const char *name = in + (in[0] == '#');

	if (!name_valid(name) || strlen(name) + 2 > outsz)
		return -1;
	out[0] = '#';
	memcpy(out + 1, name, strlen(name) + 1);
	return 0;
}

/* A printable string of at most max bytes, or -1. */
static int
field(const struct json *j, int i, size_t max, char **out)
{
	size_t k, n;

	if (i < 0 || j->t[i].type != JSON_STRING ||
	    json_string(j, i, max, out, &n) < 0)
		return -1;
	for (k = 0; k < n; k++)
		if ((unsigned char)(*out)[k] < ' ' || (*out)[k] == 0x7f) {
			free(*out);
			*out = NULL;
			return -1;
		}
	return 0;
}

static int
decode_channels(const struct json *j, int a, struct invite *inv,
    struct err *e)
{
	int i, k;

	if (j->t[a].type != JSON_ARRAY)
		return err_set(e, BCH_PERM, "the invite's channels are not a "
		    "list — ask for a new invite");
	if (j->t[a].size > INVITE_CHANNELS)
		return err_set(e, BCH_PERM, "the invite names more than %d "
		    "channels — ask for a new invite", INVITE_CHANNELS);
	inv->channels = xcalloc((size_t)j->t[a].size + 1, sizeof(char *));
	for (k = 0, i = a + 1; k < j->t[a].size; k++, i = json_next(j, i)) {
		char *s = NULL, ch[NAME_MAX_LEN + 2];
		if (field(j, i, NAME_MAX_LEN + 1, &s) < 0 ||
		    invite_channel(s, ch, sizeof ch) < 0) {
			free(s);
			return err_set(e, BCH_PERM, "the invite names a channel "
			    "that is not a valid name — ask for a new invite");
		}
		free(s);
		inv->channels[inv->nchannels++] = xstrdup(ch);
	}
	return 0;
}

/* -1, with e saying so, if the invite names a member twice. Which one
 * counts differs between readers (jq and JSON.parse take the last,
 * json_get the first): an invite checked with one must not join with
 * another. */
static int
twice(const struct json *j, struct err *e)
{
	static const char *const keys[] = { "url", "token", "channels",
		"room", "pin" };
	size_t k;

	for (k = 0; k < sizeof keys / sizeof keys[0]; k++)
		if (json_get(j, 0, keys[k]) != json_get_last(j, 0, keys[k]))
			return err_set(e, BCH_PERM, "the invite names its %s "
			    "twice — ask for a new invite", keys[k]);
	return 0;
}

static int
decode_json(const char *s, size_t n, struct invite *inv, struct err *e)
{
	struct json j;
	const char *why = NULL;
	int i, rc = -1;

	if (json_parse(&j, s, n, 4, &why) < 0)
		return err_set(e, BCH_PERM, "the invite is not JSON inside "
		    "(%s) — ask for a new invite", why ? why : "malformed");
	if (j.t[0].type != JSON_OBJECT) {
		err_set(e, BCH_PERM, "the invite is not a JSON object inside — "
		    "ask for a new invite");
		goto out;
	}
	if (twice(&j, e) < 0)
		goto out;
	i = json_get(&j, 0, "url");
	if (i < 0) {
		err_set(e, BCH_PERM, "the invite has no relay url — ask for a "
		    "new invite");
		goto out;
	}
	if (field(&j, i, 2048, &inv->url) < 0 || !invite_url_valid(inv->url)) {
		err_set(e, BCH_PERM, "the invite's url is not an http:// or "
		    "https:// URL of a host and port — ask for a new invite");
		goto out;
	}
	i = json_get(&j, 0, "token");
	if (i < 0 || field(&j, i, 1024, &inv->token) < 0 || !*inv->token) {
		err_set(e, BCH_PERM, "the invite has no room token — ask for a "
		    "new invite");
		goto out;
	}
	i = json_get(&j, 0, "channels");
	if (i >= 0 && decode_channels(&j, i, inv, e) < 0)
		goto out;
	/* A null room is none; a number or true is no name, and an error
	 * as a bad string is, not a room quietly dropped. */
	i = json_get(&j, 0, "room");
	if (i >= 0 && !json_is(&j, i, "null") &&
	    field(&j, i, 256, &inv->room) < 0) {
		err_set(e, BCH_PERM, "the invite's room is not a short line of "
		    "text — ask for a new invite");
		goto out;
	}
	i = json_get(&j, 0, "pin");
	if (i >= 0 && (field(&j, i, 64, &inv->pin) < 0 ||
	    !invite_pin_valid(inv->pin))) {
		err_set(e, BCH_PERM, "the invite's pin is not 64 hex digits — "
		    "ask for a new invite");
		goto out;
	}
	if (inv->pin) {
		char *p;
		for (p = inv->pin; *p; p++)
			*p = (char)tolower((unsigned char)*p);
	}
	rc = 0;
out:
	json_free(&j);
	return rc;
}

static int
too_long(struct err *e)
{
	return err_set(e, BCH_PERM, "the invite is too long (over %d bytes) "
	    "— ask for a new invite", INVITE_MAX);
}

int
invite_decode(const char *s, struct invite *inv, struct err *e)
{
	struct buf raw = BUF_INIT, text = BUF_INIT;
	size_t k, n;
	int rc;

	memset(inv, 0, sizeof *inv);
	while (isspace((unsigned char)*s))
		s++;
	n = strlen(s);
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		n--;
	if (n > INVITE_WRAPPED_MAX)
		return too_long(e);
	if (n < sizeof INVITE_PREFIX - 1 ||
	    memcmp(s, INVITE_PREFIX, sizeof INVITE_PREFIX - 1) != 0)
		return err_set(e, BCH_PERM, "not an invite (it must start with "
		    "bch1-) — ask the inviter for the whole string");
	s += sizeof INVITE_PREFIX - 1;
	n -= sizeof INVITE_PREFIX - 1;
	/* White space within is where a chat or mail client wrapped the
	 * long line: skipped, as base64 readers do. */
	for (k = 0; k < n; k++)
		if (!isspace((unsigned char)s[k]))
			buf_addc(&text, s[k]);
	if (text.len > INVITE_MAX - (sizeof INVITE_PREFIX - 1)) {
		wipe(text.p, text.len);
		buf_free(&text);
		return too_long(e);
	}
	rc = text.len == 0 || b64url_decode(text.p, text.len, &raw) < 0;
	if (text.p)
		wipe(text.p, text.len); /* it encodes the room token */
	buf_free(&text);
	if (rc) {
		buf_free(&raw);
		return err_set(e, BCH_PERM, "the invite does not decode (bad "
		    "base64url) — copy it whole, from bch1- to its end");
	}
	rc = decode_json(raw.p ? raw.p : "", raw.len, inv, e);
	if (raw.p)
		wipe(raw.p, raw.len); /* it held the room token */
	buf_free(&raw);
	if (rc < 0)
		invite_free(inv);
	return rc;
}

void
invite_free(struct invite *inv)
{
	size_t i;

	if (inv->token)
		wipe(inv->token, strlen(inv->token));
	free(inv->url);
	free(inv->token);
	for (i = 0; i < inv->nchannels; i++)
		free(inv->channels[i]);
	free(inv->channels);
	free(inv->room);
	free(inv->pin);
	memset(inv, 0, sizeof *inv);
}
