/* bch-mcp: a Model Context Protocol server on standard input and output,
 * so agents send and read backchannel messages through tools.
 *
 * Design rationale. One JSON-RPC message per line in, one answer per line
 * out, handled in order by one thread: every answer is built whole in a
 * buffer and written with one io_writeall, so output is never interleaved
 * or partial. A line is bounded (1 MiB, more for a body limit raised
 * with BACKCHANNEL_MAX_BODY); a bad one gets an error answer,
 * never an exit. One over the bound is never kept: json_scan follows
 * its top level as it is skipped, so its error carries its id. Claimed
 * messages are acknowledged only after the line carrying them was
 * written, and go back to the inbox if that write failed, as bch-drain
 * does with standard output. A message without an id is a
 * notification: it gets no answer and runs no tool, so nothing is ever
 * claimed for a reply nobody reads. Bodies reach the model fenced
 * under a nonce, as in bch drain --hook; structuredContent carries them
 * as JSON strings. A batch (JSON array) is answered with an array. The
 * tools themselves are in mcp-tools.c, their arguments' checks in
 * mcp-args.c; bin/mcp.h is what they share. */
#include <getopt.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "io.h"
#include "json.h"
#include "json-scan.h"
#include "mcp.h"
#include "show.h"

#ifndef BCH_VERSION
#define BCH_VERSION "0.1.0"
#endif

enum {
	PARSE_ERROR = -32700,
	INVALID_REQUEST = -32600,
	METHOD_NOT_FOUND = -32601,
	INVALID_PARAMS = -32602,
};

/* Newest first: index 0 answers a client whose version is unknown. */
static const char *const versions[] = { "2025-11-25", "2025-06-18",
	"2025-03-26", "2024-11-05" };
#define NVERSIONS (sizeof versions / sizeof versions[0])

static const char usage[] = "bch-mcp [--match scope | --here]";

/* One request (or notification) of the current line. */
struct req {
	struct server *s;
	const struct json *j;
	const char *id; /* raw JSON text of the id; NULL: none or unusable */
	int idlen;
	int params; /* token of params, or -1 */
};

/* Append s as a JSON string, control characters and bytes that are not
 * UTF-8 made visible (show_text), so the output is always valid. */
void
put_str(struct buf *b, const char *s)
{
	struct buf t = BUF_INIT;

	show_text(&t, s, 1);
	json_put_string(b, t.p ? t.p : "", t.len);
	buf_free(&t);
}

/* ,"key":"val" */
void
put_field(struct buf *b, const char *key, const char *val)
{
	buf_printf(b, ",\"%s\":", key);
	put_str(b, val);
}

static int
structured(const struct server *s)
{
	return s->version <= 1; /* structuredContent came with 2025-06-18 */
}

static void
reply_open(struct req *r)
{
	struct buf *o = &r->s->out;

	if (r->s->nout++)
		buf_addc(o, ',');
	buf_adds(o, "{\"jsonrpc\":\"2.0\",\"id\":");
	if (r->id)
		buf_add(o, r->id, (size_t)r->idlen);
	else
		buf_adds(o, "null");
}

static void
reply_result(struct req *r, const char *result)
{
	reply_open(r);
	buf_adds(&r->s->out, ",\"result\":");
	buf_adds(&r->s->out, result);
	buf_addc(&r->s->out, '}');
}

static void reply_error(struct req *r, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
reply_error(struct req *r, int code, const char *fmt, ...)
{
	char msg[600];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	reply_open(r);
	buf_printf(&r->s->out, ",\"error\":{\"code\":%d,\"message\":", code);
	put_str(&r->s->out, msg);
	buf_adds(&r->s->out, "}}");
}

/* Write the answers to one line, then settle the claims they carry: a
 * claim is deleted only once its message was written, else returned. */
/* Write U+2028 and U+2029 in b as \u2028 and \u2029. Raw, they are valid
 * JSON, but a JavaScript reader that embeds the line, and some line
 * oriented tools, take them for line ends. b is JSON we wrote, valid
 * UTF-8, so they stand only inside strings, where the escape means the
 * same; message files keep them raw, as JSON.stringify writes them. */
static void
escape_separators(struct buf *b)
{
	struct buf o = BUF_INIT;
	size_t i, run = 0;

	for (i = 0; i + 2 < b->len; i++) {
		if ((unsigned char)b->p[i] != 0xe2 ||
		    (unsigned char)b->p[i + 1] != 0x80 ||
		    ((unsigned char)b->p[i + 2] & 0xfe) != 0xa8)
			continue;
		buf_add(&o, b->p + run, i - run);
		buf_adds(&o, (unsigned char)b->p[i + 2] == 0xa8 ? "\\u2028" :
		    "\\u2029");
		run = i + 3;
		i += 2;
	}
	if (!run)
		return;
	buf_add(&o, b->p + run, b->len - run);
	buf_free(b);
	*b = o;
}

static void
flush(struct server *s)
{
	struct cli *c = s->c;
	size_t i;
	int failed = 0;

	if (s->out.len) {
		escape_separators(&s->out);
		buf_addc(&s->out, '\n');
		if ((failed = io_writeall(1, s->out.p, s->out.len) < 0))
			err_sys(&c->e, "cannot write to standard output");
	}
	for (i = 0; i < s->nheld; i++) {
		struct err e;
		if (failed ? spool_release(c->sp, &s->held[i].c, &e) :
		    spool_ack(c->sp, &s->held[i].c, s->held[i].keep, &e))
			fprintf(stderr, "%s: %s\n", c->prog, e.msg);
	}
	s->nheld = s->nout = 0;
	buf_reset(&s->out);
	if (failed)
		cli_fail(c);
}

static void
tools_list(struct req *r)
{
	struct buf b = BUF_INIT;
	const char *c;
	size_t i;

	buf_adds(&b, "{\"tools\":[");
	for (i = 0; i < ntools; i++) {
		const struct tool *t = &tools[i];
		buf_printf(&b, "%s{\"name\":\"%s\"", i ? "," : "", t->name);
		if (structured(r->s))
			buf_printf(&b, ",\"title\":\"%s\"", t->title);
		buf_adds(&b, ",\"description\":");
		put_desc(&b, t->desc, r->s->c->cfg.lim.body);
		buf_adds(&b, ",\"inputSchema\":");
		input_schema(&b, t->args, r->s->c->cfg.lim.body);
		if (structured(r->s)) {
			buf_adds(&b, ",\"outputSchema\":");
			for (c = t->output; *c; c++)
				buf_addc(&b, *c == '\'' ? '"' : *c);
		}
		buf_printf(&b, ",\"annotations\":{\"title\":\"%s\","
		    "\"readOnlyHint\":%s,\"destructiveHint\":%s,"
		    "\"idempotentHint\":%s}}", t->title,
		    t->readonly ? "true" : "false",
		    t->destructive ? "true" : "false",
		    t->idempotent ? "true" : "false");
	}
	buf_adds(&b, "]}");
	reply_result(r, b.p);
	buf_free(&b);
}

static void
reply_call(struct req *r, struct call *k)
{
	struct buf *o = &r->s->out;

	reply_open(r);
	buf_adds(o, ",\"result\":{\"content\":[{\"type\":\"text\",\"text\":");
	put_str(o, k->text.p ? k->text.p : "");
	buf_adds(o, "}]");
	if (k->failed) {
		buf_adds(o, ",\"isError\":true");
	} else if (structured(r->s)) {
		buf_adds(o, ",\"structuredContent\":");
		buf_add(o, k->data.p, k->data.len);
	}
	buf_adds(o, "}}");
}

static void
tools_call(struct req *r)
{
	const struct json *j = r->j;
	struct call k = { r->s, r->s->c, j, -1, BUF_INIT, BUF_INIT, 0,
		r->s->nheld, r->id, r->idlen, 0 };
	static const char *const keys[] = { "name", "arguments", NULL };
	const struct tool *t = tools;
	const char *dup = twice(j, r->params, keys);
	char name[TOK_MAX + 1], why[400] = "";

	int toolong = tok_str(j, json_get(j, r->params, "name"), name);

	while (t < tools + ntools && strcmp(t->name, name) != 0)
		t++;
	k.args = json_get(j, r->params, "arguments");
	if (k.args >= 0 && json_is(j, k.args, "null"))
		k.args = -1;
	if (dup) {
		reply_error(r, INVALID_PARAMS, "Invalid params: \"%s\" given "
		    "twice", dup);
	} else if (toolong) {
		reply_error(r, INVALID_PARAMS, "Unknown tool: its name is too "
		    "long (at most %d bytes)", TOK_MAX);
	} else if (!name[0]) {
		reply_error(r, INVALID_PARAMS, "Invalid params: tools/call "
		    "needs the name of a tool");
	} else if (t == tools + ntools) {
		reply_error(r, INVALID_PARAMS, "Unknown tool: %.64s", name);
	} else if (k.args >= 0 && j->t[k.args].type != JSON_OBJECT) {
		reply_error(r, INVALID_PARAMS,
		    "Invalid params: arguments must be an object");
	} else if (args_check(&k, t, why, sizeof why) < 0 && r->s->version) {
		reply_error(r, INVALID_PARAMS, "Invalid params: %s", why);
	} else {
		if (why[0]) {
			/* Since 2025-11-25 (SEP-1303) the model sees these. */
			err_set(&k.c->e, BCH_PERM, "%s", why);
			fail(&k, &k.c->e);
		} else if (t->need_agent &&
		    config_need_agent(&k.c->cfg, &k.c->e) < 0) {
			fail(&k, &k.c->e);
		} else if (t->run(&k, t->flag) < 0) {
			unclaim(&k);
		}
		if (!k.cancelled) /* else its answer goes unread */
			reply_call(r, &k);
	}
	buf_free(&k.text);
	buf_free(&k.data);
}

static void
initialize(struct req *r)
{
	struct server *s = r->s;
	struct buf b = BUF_INIT, ins = BUF_INIT;
	char want[TOK_MAX + 1];

	/* One too long for want is no version of ours: the newest, below. */
	if (!tok_str(r->j, json_get(r->j, r->params, "protocolVersion"),
	    want) && !want[0]) {
		reply_error(r, INVALID_PARAMS, "Invalid params: initialize "
		    "needs a protocolVersion string");
		return;
	}
	for (s->version = 0; s->version < NVERSIONS &&
	    strcmp(want, versions[s->version]) != 0; s->version++)
		;
	if (s->version == NVERSIONS)
		s->version = 0; /* unknown: offer the newest */
	buf_adds(&ins, "backchannel carries messages between AI coding agents "
	    "and people: direct messages to @agent and posts to #channel, "
	    "kept until read.");
	if (s->c->cfg.agent[0])
		buf_printf(&ins, " You are @%s.", s->c->cfg.agent);
	buf_adds(&ins, " Check bch_inbox when you start a task and between "
	    "steps; reply or report with bch_send." UNTRUSTED);
	buf_printf(&b, "{\"protocolVersion\":\"%s\",\"capabilities\":"
	    "{\"tools\":{}},\"serverInfo\":{\"name\":\"backchannel\","
	    "\"version\":\"%s\"}", versions[s->version], BCH_VERSION);
	put_field(&b, "instructions", ins.p);
	buf_addc(&b, '}');
	reply_result(r, b.p);
	buf_free(&b);
	buf_free(&ins);
}

/* Check the envelope of request object t and fill r and method
 * (TOK_MAX + 1 bytes; "" with *toolong set for a name longer than
 * that). 0, or -1 after answering. */
static int
envelope(struct req *r, int t, char *method, int *toolong)
{
	const struct json *j = r->j;
	static const char *const keys[] = { "id", "jsonrpc", "method",
		"params", NULL };
	int id = json_get(j, t, "id"), m = json_get(j, t, "method");
	const char *why = NULL, *dup = twice(j, t, keys);

	if (id >= 0 && (j->t[id].type == JSON_STRING ||
	    (j->t[id].type == JSON_PRIMITIVE && strchr("-0123456789",
	    j->s[j->t[id].start])))) {
		int quoted = j->t[id].type == JSON_STRING;
		r->id = j->s + j->t[id].start - quoted;
		r->idlen = j->t[id].end - j->t[id].start + 2 * quoted;
	} else if (id >= 0) {
		why = "id must be a string or a number";
	}
	if (dup) {
		if (strcmp(dup, "id") == 0)
			r->id = NULL; /* which of the two would it be? */
		reply_error(r, INVALID_REQUEST, "Invalid Request: \"%s\" given "
		    "twice", dup);
		return -1;
	}
	r->params = json_get(j, t, "params");
	if (!why && !tok_is(j, json_get(j, t, "jsonrpc"), "2.0"))
		why = "jsonrpc must be \"2.0\"";
	else if (!why && (m < 0 || j->t[m].type != JSON_STRING))
		why = "method must be a string";
	else if (!why && r->params >= 0 &&
	    j->t[r->params].type != JSON_OBJECT &&
	    j->t[r->params].type != JSON_ARRAY)
		why = "params must be an object";
	if (why) {
		reply_error(r, INVALID_REQUEST, "Invalid Request: %s", why);
		return -1;
	}
	*toolong = tok_str(j, m, method);
	return 0;
}

static void
handle(struct server *s, const struct json *j, int t)
{
	struct req r = { s, j, NULL, 0, -1 };
	char method[TOK_MAX + 1];
	int toolong = 0;

	if (j->t[t].type != JSON_OBJECT) {
		reply_error(&r, INVALID_REQUEST, "Invalid Request: not an object");
		return;
	}
	if (json_get(j, t, "method") < 0 && json_get(j, t, "id") >= 0 &&
	    (json_get(j, t, "result") >= 0 || json_get(j, t, "error") >= 0))
		return; /* a response: this server sends no requests */
	if (envelope(&r, t, method, &toolong) < 0 || !r.id)
		return; /* answered, or a notification: never answered */
	if (toolong)
		reply_error(&r, METHOD_NOT_FOUND, "Method not found: its name "
		    "is too long (at most %d bytes)", TOK_MAX);
	else if (r.params >= 0 && j->t[r.params].type != JSON_OBJECT)
		reply_error(&r, INVALID_PARAMS,
		    "Invalid params: params must be an object");
	else if (strcmp(method, "initialize") == 0)
		initialize(&r);
	else if (strcmp(method, "ping") == 0)
		reply_result(&r, "{}");
	else if (strcmp(method, "tools/list") == 0)
		tools_list(&r);
	else if (strcmp(method, "tools/call") == 0)
		tools_call(&r);
	else
		reply_error(&r, METHOD_NOT_FOUND, "Method not found: %.64s",
		    method);
}

static void
handle_line(struct server *s, const char *p, size_t n)
{
	struct req none = { s, NULL, NULL, 0, -1 };
	struct json j;
	const char *why = "malformed JSON";
	int i, k;

	if (strspn(p, " \t\r") == n)
		return; /* a blank line carries nothing */
	if (json_parse(&j, p, n, 64, &why) < 0) {
		reply_error(&none, PARSE_ERROR, "Parse error: %s", why);
		return;
	}
	if (j.t[0].type != JSON_ARRAY) {
		handle(s, &j, 0);
	} else if (j.t[0].size == 0) {
		reply_error(&none, INVALID_REQUEST,
		    "Invalid Request: empty batch");
	} else {
		buf_addc(&s->out, '[');
		for (k = 0, i = 1; k < j.t[0].size; k++, i = json_next(&j, i))
			handle(s, &j, i);
		if (s->nout)
			buf_addc(&s->out, ']');
		else
			buf_reset(&s->out); /* only notifications */
	}
	json_free(&j);
}

/* Does line p (n bytes) cancel request id (raw JSON, idlen bytes)? */
static int
cancels(const char *p, size_t n, const char *id, int idlen)
{
	struct json j;
	const char *why;
	int rid, q, hit = 0;

	if (n > line_max || json_parse(&j, p, n, 64, &why) < 0)
		return 0;
	rid = json_get(&j, json_get(&j, 0, "params"), "requestId");
	if (rid >= 0 && json_get(&j, 0, "id") < 0 && tok_is(&j,
	    json_get(&j, 0, "method"), "notifications/cancelled")) {
		q = j.t[rid].type == JSON_STRING;
		hit = j.t[rid].end - j.t[rid].start + 2 * q == idlen &&
		    memcmp(j.s + j.t[rid].start - q, id, (size_t)idlen) == 0;
	}
	json_free(&j);
	return hit;
}

int
cancelled(struct server *s, const char *id, int idlen)
{
	struct io_lines *in = &s->in;
	const char *p, *nl, *end;
	int hit = 0;

	/* An error is met again, and reported, by serve(). */
	if (!id || io_lines_pull(in, line_max) < 0 || !in->b.p)
		return 0;
	end = in->b.p + in->b.len;
	for (p = in->b.p + in->off; !hit && p < end &&
	    (nl = memchr(p, '\n', (size_t)(end - p))) != NULL; p = nl + 1)
		hit = cancels(p, (size_t)(nl - p), id, idlen);
	return hit;
}

size_t line_max = LINE_MAX_BYTES;

/* The longest line to read: a bch_send request carries a message whose
 * every byte JSON may spell as a six-byte \uXXXX escape (as bch-send's
 * stdin allows), and its JSON-RPC envelope. At least LINE_MAX_BYTES. */
static size_t
max_line(const struct limits *l)
{
	size_t room = 64 * 1024;

	if (l->total > (SIZE_MAX - room) / 6)
		return SIZE_MAX;
	return 6 * l->total + room > LINE_MAX_BYTES ? 6 * l->total + room :
	    LINE_MAX_BYTES;
}

static void
scan_over(void *scan, const char *p, size_t n)
{
	json_scan(scan, p, n);
}

/* Members of a request's top level, as json_scan watches them. */
static const char *const members[] = { "id", "jsonrpc", "method", "params",
	"result", "error", NULL };
enum { M_ID, M_JSONRPC, M_METHOD, M_PARAMS, M_RESULT, M_ERROR };

/* A line over line_max, all of it read through sc but never kept. Its
 * error carries its id, if its top level gives one that is plainly so
 * (a client matches an answer to its call by id alone, and SDKs write
 * the id last, after the params that made the line long); a response
 * or a notification gets no answer, as it would within the limit. */
static void
too_long(struct server *s, const struct json_scan *sc)
{
	struct req r = { s, NULL, NULL, 0, -1 };
	const char *v;
	size_t n, pn;
	int p = json_scan_member(sc, M_PARAMS, &v, &pn);
	int type = json_scan_member(sc, M_ID, &v, &n);

	if (v && (type == JSON_STRING || strchr("-0123456789", *v))) {
		r.id = v;
		r.idlen = (int)n;
	}
	if (json_scan_ok(sc) && sc->m[M_ID].n && !sc->m[M_METHOD].n &&
	    (sc->m[M_RESULT].n || sc->m[M_ERROR].n))
		return; /* a response: this server sends no requests */
	if (!sc->m[M_ID].n && json_scan_member(sc, M_METHOD, &v, &n) ==
	    JSON_STRING && json_scan_member(sc, M_JSONRPC, &v, &n) &&
	    v && n == 5 && memcmp(v, "\"2.0\"", 5) == 0 &&
	    (!sc->m[M_PARAMS].n || p == JSON_OBJECT || p == JSON_ARRAY))
		return; /* a notification */
	reply_error(&r, INVALID_REQUEST, "Invalid Request: line over %zu "
	    "bytes, skipped", line_max);
}

static void
serve(struct server *s)
{
	struct buf line = BUF_INIT;
	struct json_scan scan;
	int rc, toolong;

	json_scan_init(&scan, members);
	s->in.over = scan_over;
	s->in.over_arg = &scan;
	while ((rc = io_lines_next(&s->in, &line, line_max,
	    &toolong)) == 1) {
		if (toolong)
			too_long(s, &scan);
		else
			handle_line(s, line.p ? line.p : "", line.len);
		json_scan_init(&scan, members);
		flush(s);
	}
	buf_free(&line);
	if (rc < 0) {
		err_sys(&s->c->e, "cannot read standard input");
		cli_fail(s->c);
	}
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "match", required_argument, 0, 'm' },
		{ "here", no_argument, 0, 'H' },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	struct server s;
	static struct cli c; /* reachable until exit, as exit(3) leaves it */
	char matchbuf[4096];
	const char *match = NULL;
	int ch, here = 0;

	memset(&s, 0, sizeof s);
	s.c = &c;
	s.in.fd = 0;
	cli_init(&c, "bch-mcp");
	while ((ch = getopt_long(argc, argv, "hm:H", opts, NULL)) != -1) {
		switch (ch) {
		case 'm': match = optarg; break;
		case 'H': here = 1; break;
		case 'h': printf("usage: %s\n", usage); return 0;
		default: cli_usage(&c, usage, "unknown option");
		}
	}
	if (optind != argc)
		cli_usage(&c, usage, "unexpected argument \"%s\"", argv[optind]);
	cli_open(&c, 0);
	line_max = max_line(&c.cfg.lim);
	s.match = cli_match(&c, match, here, matchbuf, sizeof matchbuf);
	serve(&s);
	free(s.held);
	buf_free(&s.out);
	io_lines_free(&s.in);
	cli_close(&c);
	return 0;
}
