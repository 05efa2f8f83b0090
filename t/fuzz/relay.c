/* relay fuzz target: relay_handle end to end over a real spool in a
 * private BACKCHANNEL_HOME, the way bch-relayd drives it.
 *
 * The spool holds two agents, alice and bob, registered through
 * relay_handle itself with the room token; every input starts from that
 * state again (the tree is rebuilt, the spool and relay opened afresh),
 * so an input means the same thing whenever it runs.
 *
 * An input is up to 8 requests separated by "\n----\n". Each is
 *
 *   route byte   which route (byte % 23): 0-20 the table below,
 *                21: "METHOD PATH\n" first, then the body,
 *                22: raw HTTP bytes, parsed by http_parse_request with
 *                    bch-relayd's limits, pipelined requests each handled;
 *                    @ROOM@, @ALICE@, @BOB@ and @NEW@ stand for the room
 *                    token and the personal tokens (@NEW@: the last one
 *                    registered by this input)
 *   auth byte    which Authorization (byte % 12, the switch in one();
 *                11: the next line of the input, raw)
 *   body         the rest
 *
 * Checked for every answer: a status PROTOCOL.md 5 documents (a 5xx
 * other than 507 is the relay's own fault, so a failure here), a JSON
 * body ({"error": "..."} for 4xx; none, and Allow, to OPTIONS), an
 * event stream's backlog as "id:" and one "data:" line per message;
 * only a personal token gets past the routes that need one, and the
 * answer names its agent; relay_head() on the request's head alone
 * answers the same 401, and only when relay_handle() does; a 2xx send is a
 * message from the authenticated agent, already in each recipient's new/
 * exactly as answered (a retry with the same id answers the same); a 200
 * subscribe leaves the agent subscribed to exactly the channel asked
 * for; no answer carries a token (but a 201's own) or a token's hash,
 * no agent record a tokenHash. After each input: nothing but the
 * spool layout under BACKCHANNEL_HOME (no tmp/ leftovers, no corrupt/,
 * no symlinks, every stored message readable) and nothing beside it in
 * the temporary directory that holds it. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"
#include "claim.h"
#include "hash.h"
#include "http.h"
#include "io.h"
#include "json.h"
#include "relay.h"
#include "spool.h"

/* What was asked and answered, printed when a check fails. */
static char ctx[2048];

#define CHECK(c) \
	do { \
		if (!(c)) { \
			fprintf(stderr, "%s:%d: check failed: %s\n%s\n", \
			    __FILE__, __LINE__, #c, ctx); \
			abort(); \
		} \
	} while (0)

const char *
__asan_default_options(void)
{
	return "max_malloc_fill_size=1048576";
}

#define SEP "\n----\n"
#define MAX_REQS 8
#define MAX_PIPELINED 16 /* requests in one raw HTTP record */
#define MAX_INBOX "3" /* so a few sends fill an inbox (507) */
#define MAX_BODY "1024"

static const struct {
	const char *method, *path;
} routes[] = {
	{ "GET", "/v1/health" },
	{ "POST", "/v1/register" },
	{ "GET", "/v1/register" },
	{ "GET", "/v1/agents" },
	{ "GET", "/v1/channels" },
	{ "POST", "/v1/subscribe" },
	{ "POST", "/v1/unsubscribe" },
	{ "POST", "/v1/send" },
	{ "POST", "/v1/take" },
	{ "POST", "/v1/ack" },
	{ "POST", "/v1/release" },
	{ "GET", "/v1/inbox/alice" },
	{ "GET", "/v1/inbox/bob" },
	{ "GET", "/v1/events/alice" },
	{ "GET", "/v1/events/bob" },
	{ "GET", "/v1/inbox/%61lice" },
	{ "GET", "/v1/inbox/@NEW@" },
	{ "POST", "/v1/agents" },
	{ "GET", "/v1/send" },
	{ "GET", "/v1/agents?x=1#y" },
	{ "GET", "/nope" },
};
#define NROUTES (sizeof routes / sizeof routes[0])
#define RAW_LINE NROUTES
#define RAW_HTTP (NROUTES + 1)
#define NAUTH 12

static char outer[PATH_MAX], home[PATH_MAX];
static struct config cfg;
static struct spool *sp;
static struct relay rl;
static const char room[] = "fuzz-room-token-0123456789abcdef";
static struct buf base_rec[2];
static const char *const base_name[2] = { "alice", "bob" };

/* Personal tokens: alice's and bob's, then those this input registered. */
static struct {
	char name[NAME_MAX_LEN + 1];
	char token[65];
} known[2 + MAX_REQS * MAX_PIPELINED];
static size_t nknown;

/* Successful sends of this input, for idempotent retries. */
static struct {
	char from[NAME_MAX_LEN + 1];
	char id[ID_MAX_LEN + 1];
	char *answer;
} sent[MAX_REQS * MAX_PIPELINED];
static size_t nsent;

static int trace; /* BCH_FUZZ_TRACE=1: print each request and answer */

static struct buf said; /* the bodies of this input's requests so far */

static void
setctx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(ctx, sizeof ctx, fmt, ap);
	va_end(ap);
}

static int
rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	if (f->level > 0)
		CHECK(remove(p) == 0);
	return 0;
}

static int
rm_any(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	remove(p);
	return 0;
}

/* A crash skips atexit: remove what runs that died left in tmp. */
static void
rm_stale(const char *tmp)
{
	static const char pre[] = "bch-fuzz-relay.";
	char p[PATH_MAX];
	struct dirent *e;
	DIR *d = opendir(tmp);

	if (!d)
		return;
	while ((e = readdir(d))) {
		char *end;
		long pid;
		if (strncmp(e->d_name, pre, sizeof pre - 1) != 0)
			continue;
		pid = strtol(e->d_name + sizeof pre - 1, &end, 10);
		if (*end != '.' || pid <= 0 || kill((pid_t)pid, 0) == 0 ||
		    errno != ESRCH)
			continue;
		snprintf(p, sizeof p, "%s/%s", tmp, e->d_name);
		nftw(p, rm_any, 16, FTW_DEPTH | FTW_PHYS);
	}
	closedir(d);
}

/* Empty dir, keeping dir itself. */
static void
rm_tree(const char *dir)
{
	CHECK(nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS) == 0);
}

static void
pathf(char *out, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(out, PATH_MAX, fmt, ap);
	va_end(ap);
	CHECK(n > 0 && n < PATH_MAX);
}

static void
open_relay(void)
{
	struct err e;
	size_t i;

	sp = spool_fs_open(&cfg, "bch-fuzz-relay", &e);
	CHECK(sp);
	CHECK(relay_init(&rl, sp, &cfg, room, &e) == 0);
	/* As bch-relayd sets them, but a bucket of 5 so that 429 is
	 * reachable in one input. */
	rl.rate = 50;
	rl.burst = 5;
	for (i = 0; i < rl.captok; i++)
		rl.tok[i].tokens = rl.burst;
}

static void
close_relay(void)
{
	relay_free(&rl);
	spool_close(sp);
	sp = NULL;
}

/* BACKCHANNEL_HOME as it was once alice and bob had registered. */
static void
build_base(void)
{
	static const char *sub[] = { "tmp", "new", "cur" };
	char p[PATH_MAX];
	size_t i, k;
	int fd;

	rm_tree(home);
	for (i = 0; i < 2; i++) {
		for (k = 0; k < 3; k++) {
			pathf(p, "%s/spool/%s/%s", home, base_name[i], sub[k]);
			CHECK(io_mkdirs(p, 0700) == 0);
		}
		pathf(p, "%s/agents", home);
		CHECK(io_mkdirs(p, 0700) == 0);
		pathf(p, "%s/agents/%s.json", home, base_name[i]);
		fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		CHECK(fd >= 0);
		CHECK(io_writeall(fd, base_rec[i].p, base_rec[i].len) == 0);
		CHECK(close(fd) == 0);
	}
}

static void
cleanup(void)
{
	if (sp)
		close_relay();
	if (outer[0]) {
		rm_tree(outer);
		rmdir(outer);
	}
}

static void answer_check(const struct http_req *q, struct relay_answer *a);

static char *
handle(const char *method, const char *path, const char *auth,
    const char *body, int *status)
{
	struct http_req q;
	struct relay_answer a;
	char *out;

	memset(&q, 0, sizeof q);
	memset(&a, 0, sizeof a);
	snprintf(q.method, sizeof q.method, "%s", method);
	snprintf(q.path, sizeof q.path, "%s", path);
	snprintf(q.auth, sizeof q.auth, "%s", auth);
	q.body = (char *)body;
	q.body_len = strlen(body);
	q.keepalive = 1;
	relay_handle(&rl, &q, &a);
	*status = a.status;
	out = xstrdup(a.body.p ? a.body.p : "");
	buf_free(&a.body);
	return out;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *tmp = getenv("TMPDIR");
	char p[PATH_MAX], auth[128], req[64];
	struct agent_rec rec;
	struct err e;
	size_t i;

	if (access("/dev/shm", W_OK) == 0)
		tmp = "/dev/shm";
	else if (!tmp || !*tmp)
		tmp = "/tmp";
	rm_stale(tmp);
	snprintf(outer, sizeof outer, "%s/bch-fuzz-relay.%ld.XXXXXX", tmp,
	    (long)getpid());
	if (!mkdtemp(outer)) {
		perror("bch-fuzz-relay: mkdtemp");
		exit(1);
	}
	atexit(cleanup);
	pathf(home, "%s/home", outer);
	CHECK(mkdir(home, 0700) == 0);
	trace = getenv("BCH_FUZZ_TRACE") != NULL;
	setenv("BACKCHANNEL_HOME", home, 1);
	setenv("BACKCHANNEL_FSYNC", "0", 1);
	setenv("BACKCHANNEL_MAX_INBOX", MAX_INBOX, 1);
	setenv("BACKCHANNEL_MAX_BODY", MAX_BODY, 1);
	unsetenv("BACKCHANNEL_AGENT");
	unsetenv("BACKCHANNEL_URL");
	unsetenv("BACKCHANNEL_TOKEN");
	unsetenv("BACKCHANNEL_PIN");
	unsetenv("BACKCHANNEL_CA");
	if (config_load(&cfg, &e) < 0) {
		fprintf(stderr, "bch-fuzz-relay: %s\n", e.msg);
		exit(1);
	}
	CHECK(!cfg.url);
	open_relay();
	snprintf(auth, sizeof auth, "Bearer %s", room);
	for (i = 0; i < 2; i++) {
		int status;
		char *body;
		snprintf(req, sizeof req, "{\"name\":\"%s\"}", base_name[i]);
		body = handle("POST", "/v1/register", auth, req, &status);
		setctx("register %s: %d %s", base_name[i], status, body);
		CHECK(status == 201);
		CHECK(agent_decode(body, strlen(body), &rec, &e) == 0);
		CHECK(rec.token && strlen(rec.token) == 64);
		snprintf(known[i].name, sizeof known[i].name, "%s", base_name[i]);
		memcpy(known[i].token, rec.token, 65);
		agent_free(&rec);
		free(body);
	}
	close_relay();
	for (i = 0; i < 2; i++) {
		pathf(p, "%s/agents/%s.json", home, base_name[i]);
		CHECK(io_readfile(AT_FDCWD, p, 1 << 16, &base_rec[i]) == 0);
	}
	build_base();
	open_relay();
	ctx[0] = 0;
	return 0;
}

/* The agent whose personal token q carries, or NULL. */
static const char *
who_of(const char *auth)
{
	size_t i;

	if (strncasecmp(auth, "Bearer ", 7) != 0)
		return NULL;
	for (i = 0; i < nknown; i++)
		if (strcmp(auth + 7, known[i].token) == 0)
			return known[i].name;
	return NULL;
}

static int
is_room(const char *auth)
{
	return strncasecmp(auth, "Bearer ", 7) == 0 &&
	    strcmp(auth + 7, room) == 0;
}

static const char *
token_of(const char *name)
{
	size_t i;

	for (i = 0; i < nknown; i++)
		if (strcmp(known[i].name, name) == 0)
			return known[i].token;
	return NULL;
}

static const char *
newest(void)
{
	return nknown > 2 ? known[nknown - 1].name : "nobody";
}

/* A string field of a JSON object, as relay_field() reads it. */
static char *
str_field(const char *s, size_t n, const char *key)
{
	struct json j;
	const char *why;
	char *out = NULL;
	int i;

	if (json_parse(&j, s, n, 16, &why) < 0)
		return NULL;
	if (j.t[0].type == JSON_OBJECT && (i = json_get(&j, 0, key)) >= 0)
		json_string(&j, i, 4096, &out, NULL);
	json_free(&j);
	return out;
}

static int
valid_json(const char *s, size_t n, int type)
{
	struct json j;
	const char *why;
	int ok;

	if (json_parse(&j, s, n, 64, &why) < 0)
		return 0;
	ok = !type || j.t[0].type == type;
	json_free(&j);
	return ok;
}

/* Each element of a JSON array, as text, to fn. */
static void
each(const char *s, size_t n, void (*fn)(const char *, size_t))
{
	struct json j;
	const char *why;
	int i, k;

	CHECK(json_parse(&j, s, n, 64, &why) == 0);
	CHECK(j.t[0].type == JSON_ARRAY);
	for (k = 0, i = 1; k < j.t[0].size; k++, i = json_next(&j, i)) {
		int a = j.t[i].start, b = j.t[i].end;
		if (j.t[i].type == JSON_STRING) {
			a--;
			b++;
		}
		fn(s + a, (size_t)(b - a));
	}
	json_free(&j);
}

static void
is_message(const char *s, size_t n)
{
	struct msg m;
	struct err e;

	CHECK(msg_decode(s, n, 0, &cfg.rlim, &m, &e) == 0);
	msg_free(&m);
}

static void
is_agent(const char *s, size_t n)
{
	struct agent_rec a;
	struct err e;

	CHECK(agent_decode(s, n, &a, &e) == 0);
	CHECK(!a.token_hash && !a.token);
	agent_free(&a);
}

static void
is_channel(const char *s, size_t n)
{
	char *c = NULL;

	CHECK(n >= 3 && s[0] == '"' && s[1] == '#');
	c = xstrndup(s + 2, n - 3);
	CHECK(name_valid(c));
	free(c);
}

/* The stored copy of a sent message in rcpt's new/. */
static void
delivered(const char *rcpt, const struct msg *m)
{
	char p[PATH_MAX];
	struct buf b = BUF_INIT;
	struct msg d;
	struct err e;

	pathf(p, "%s/spool/%s/new/%s.json", home, rcpt, m->id);
	CHECK(io_readfile(AT_FDCWD, p, cfg.rlim.total + 1, &b) == 0);
	CHECK(msg_decode(b.p, b.len, 0, &cfg.rlim, &d, &e) == 0);
	/* Not an older message that happened to have the same id. */
	CHECK(strcmp(d.from, m->from) == 0);
	CHECK(strcmp(d.to, m->to) == 0 && strcmp(d.body, m->body) == 0);
	CHECK(strcmp(d.ts, m->ts) == 0);
	msg_free(&d);
	buf_free(&b);
}

static void
check_send(const struct http_req *q, const struct relay_answer *a,
    const char *who)
{
	struct limits lim = cfg.lim;
	struct msg req, m;
	struct err e;
	size_t i;

	/* A request may escape what the message does not (relay-mail.c). */
	lim.total = msg_request_max(&cfg.lim);
	if (msg_decode(q->body, q->body_len, 1, &lim, &req, &e) < 0) {
		CHECK(a->status == 400 || a->status == 413);
		return;
	}
	if (req.id[0])
		for (i = 0; i < nsent; i++)
			if (strcmp(sent[i].from, who) == 0 &&
			    strcmp(sent[i].id, req.id) == 0) {
				/* A retry: the first answer again. */
				CHECK(a->status == 200);
				CHECK(strcmp(a->body.p, sent[i].answer) == 0);
				msg_free(&req);
				return;
			}
	msg_free(&req);
	if (a->status != 200)
		return;
	CHECK(msg_decode(a->body.p, a->body.len, 0, &cfg.rlim, &m, &e) == 0);
	CHECK(strcmp(m.from, who) == 0); /* from the token, never the body */
	if (m.to[0] == '@') {
		delivered(m.to + 1, &m);
	} else {
		struct agent_rec *all;
		size_t n, got = 0;
		CHECK(m.to[0] == '#');
		CHECK(spool_agents(sp, &all, &n, &e) == 0);
		for (i = 0; i < n; i++)
			if (strcmp(all[i].name, who) != 0 &&
			    agent_has_sub(&all[i], m.to) >= 0) {
				delivered(all[i].name, &m);
				got++;
			}
		agent_list_free(all, n);
		CHECK(got > 0);
	}
	if (nsent < sizeof sent / sizeof sent[0]) {
		snprintf(sent[nsent].from, sizeof sent[nsent].from, "%s", who);
		snprintf(sent[nsent].id, sizeof sent[nsent].id, "%s", m.id);
		sent[nsent].answer = xstrdup(a->body.p);
		nsent++;
	}
	msg_free(&m);
}

static void
check_register(const struct http_req *q, const struct relay_answer *a,
    const char *who)
{
	struct agent_rec rec;
	struct err e;
	size_t i;

	if (a->status != 200 && a->status != 201)
		return;
	CHECK(agent_decode(a->body.p, a->body.len, &rec, &e) == 0);
	CHECK(!rec.token_hash);
	if (a->status == 201) {
		/* A first registration: with the room token, a new token. */
		CHECK(is_room(q->auth));
		CHECK(rec.token && strlen(rec.token) == 64);
		CHECK(strspn(rec.token, "0123456789abcdef") == 64);
		CHECK(!token_of(rec.name));
		CHECK(nknown < sizeof known / sizeof known[0]);
		snprintf(known[nknown].name, sizeof known[nknown].name, "%s",
		    rec.name);
		memcpy(known[nknown].token, rec.token, 65);
		nknown++;
	} else {
		/* A refresh: only with the name's own token. */
		CHECK(who && strcmp(rec.name, who) == 0 && !rec.token);
	}
	for (i = 0; i < rec.nsubs; i++)
		CHECK(rec.subs[i][0] == '#' && name_valid(rec.subs[i] + 1));
	agent_free(&rec);
}

static void
check_subscribe(const struct http_req *q, const struct relay_answer *a,
    const char *who, int on)
{
	struct agent_rec *all;
	struct err e;
	size_t n, i;
	char *c, chan[NAME_MAX_LEN + 8];
	int found = -1;

	if (a->status != 200)
		return;
	CHECK(strcmp(a->body.p, "{\"ok\":true,\"changed\":true}") == 0 ||
	    strcmp(a->body.p, "{\"ok\":true,\"changed\":false}") == 0);
	c = str_field(q->body, q->body_len, "channel");
	CHECK(c);
	/* What was asked for, exactly: a channel name, with or without #. */
	CHECK(name_valid(c[0] == '#' ? c + 1 : c));
	snprintf(chan, sizeof chan, "#%s", c[0] == '#' ? c + 1 : c);
	CHECK(spool_agents(sp, &all, &n, &e) == 0);
	for (i = 0; i < n; i++)
		if (strcmp(all[i].name, who) == 0)
			found = agent_has_sub(&all[i], chan) >= 0;
	agent_list_free(all, n);
	CHECK(found == on);
	free(c);
}

static void
check_take(const struct relay_answer *a)
{
	struct json j;
	const char *why;
	int i;

	if (a->status != 200)
		return;
	CHECK(json_parse(&j, a->body.p, a->body.len, 64, &why) == 0);
	CHECK(j.t[0].type == JSON_OBJECT);
	i = json_get(&j, 0, "message");
	CHECK(i >= 0);
	if (j.t[i].type == JSON_OBJECT)
		is_message(a->body.p + j.t[i].start,
		    (size_t)(j.t[i].end - j.t[i].start));
	else
		CHECK(json_is(&j, i, "null"));
	json_free(&j);
}

/* The backlog bch-relayd sends first on an event stream. */
static void
check_sse(const char *agent)
{
	struct buf out = BUF_INIT;
	const char *p, *nl;
	struct msg m;
	struct err e;

	relay_sse_backlog(&rl, agent, &out);
	p = out.p ? out.p : "";
	while (*p) {
		char id[ID_MAX_LEN + 1];
		CHECK(strncmp(p, "id: ", 4) == 0);
		nl = strchr(p, '\n');
		CHECK(nl && (size_t)(nl - p - 4) <= ID_MAX_LEN);
		memcpy(id, p + 4, (size_t)(nl - p - 4));
		id[nl - p - 4] = 0;
		CHECK(id_valid(id));
		p = nl + 1;
		CHECK(strncmp(p, "data: ", 6) == 0);
		nl = strchr(p, '\n');
		CHECK(nl && nl[1] == '\n'); /* one data line, then a blank */
		CHECK(msg_decode(p + 6, (size_t)(nl - p - 6), 0, &cfg.rlim, &m,
		    &e) == 0);
		CHECK(strcmp(m.id, id) == 0);
		CHECK(m.to[0] == '#' || strcmp(m.to + 1, agent) == 0);
		msg_free(&m);
		p = nl + 2;
	}
	buf_free(&out);
}

static void
answer_check(const struct http_req *q, struct relay_answer *a)
{
	static const int ok[] = { 200, 201, 400, 401, 403, 404, 405, 409, 413,
		429, 507 };
	char path[sizeof q->path];
	const char *who = who_of(q->auth);
	int post = strcmp(q->method, "POST") == 0;
	int get = strcmp(q->method, "GET") == 0 ||
	    strcmp(q->method, "HEAD") == 0;
	int known_status = 0;
	size_t i;

	setctx("%s %s (auth %.80s, %s)\nbody %.600s\n-> %d %.800s",
	    q->method, q->path, q->auth, who ? who : "nobody", q->body,
	    a->status, a->body.p ? a->body.p : "");
	snprintf(path, sizeof path, "%s", q->path);
	path[strcspn(path, "?#")] = 0;
	for (i = 0; i < sizeof ok / sizeof ok[0]; i++)
		known_status |= a->status == ok[i];
	CHECK(known_status);
	CHECK(a->retry_after == 0 || a->status == 429);
	if (a->status == 429)
		CHECK(a->retry_after > 0 && a->retry_after < 60);
	if (a->sse) {
		CHECK(a->status == 200 && strcmp(q->method, "GET") == 0);
		CHECK(strncmp(path, "/v1/events/", 11) == 0);
		CHECK(who && strcmp(a->agent, who) == 0);
		CHECK(!a->body.len);
		check_sse(a->agent);
		return;
	}
	/* OPTIONS: a route's methods (the relay's, for "*") in Allow, no
	 * body, no token needed; 404 for a path that is no route. */
	if (strcmp(q->method, "OPTIONS") == 0) {
		CHECK(!a->agent[0]);
		CHECK(a->status == 200 || a->status == 404);
		CHECK((a->status == 200) == (a->allow != NULL));
		if (a->allow)
			CHECK(!a->body.len && strstr(a->allow, "OPTIONS"));
		if (strcmp(path, "*") == 0 || strcmp(path, "/v1/health") == 0)
			CHECK(a->status == 200);
		else if (strncmp(path, "/v1/", 4) != 0)
			CHECK(a->status == 404);
		return;
	}
	CHECK(a->body.p && a->body.len == strlen(a->body.p));
	CHECK(valid_json(a->body.p, a->body.len, 0));
	/* No answer gives away a token or the hash kept of one (a 201
	 * carries the new agent's own token: it is not in known yet), but
	 * for what a request of this input carried in its body (libFuzzer
	 * learns the tokens from the comparisons it watches). */
	for (i = 0; i < nknown; i++) {
		char h[65];
		hash_sha256_hex(known[i].token, 64, h);
		if (!memmem(said.p, said.len, known[i].token, 64))
			CHECK(!strstr(a->body.p, known[i].token));
		if (!memmem(said.p, said.len, h, 64))
			CHECK(!strstr(a->body.p, h));
	}
	if (a->status >= 400) {
		char *why = str_field(a->body.p, a->body.len, "error");
		CHECK(why && *why);
		free(why);
	}
	/* A 405 names the methods the route takes, and only a 405 does
	 * (but for OPTIONS, above). */
	CHECK((a->status == 405) == (a->allow != NULL));
	if (a->allow && strcmp(a->allow, "POST, OPTIONS") == 0)
		CHECK(!post);
	else if (a->allow && strcmp(a->allow, "GET, OPTIONS") == 0)
		CHECK(strcmp(q->method, "GET") != 0);
	else if (a->allow)
		CHECK(strcmp(a->allow, "GET, HEAD, OPTIONS") == 0 && !get);
	if (strcmp(path, "/v1/health") == 0) {
		CHECK(a->status == (get ? 200 : 405));
		return;
	}
	if (strcmp(path, "/v1/register") == 0) {
		CHECK(post || a->status == 405);
		if (post)
			check_register(q, a, who);
		return;
	}
	/* Every other route: a personal token, and the answer is its. */
	if (strncmp(path, "/v1/", 4) != 0) {
		CHECK(a->status == 404);
		return;
	}
	if (!who) {
		CHECK(a->status == 401 && !a->agent[0]);
		return;
	}
	CHECK(a->status != 401 && strcmp(a->agent, who) == 0);
	if (a->status >= 300)
		return;
	if (post && strcmp(path, "/v1/send") == 0)
		check_send(q, a, who);
	else if (post && strcmp(path, "/v1/subscribe") == 0)
		check_subscribe(q, a, who, 1);
	else if (post && strcmp(path, "/v1/unsubscribe") == 0)
		check_subscribe(q, a, who, 0);
	else if (post && strcmp(path, "/v1/take") == 0)
		check_take(a);
	else if (strcmp(path, "/v1/agents") == 0)
		each(a->body.p, a->body.len, is_agent);
	else if (strcmp(path, "/v1/channels") == 0)
		each(a->body.p, a->body.len, is_channel);
	else if (strncmp(path, "/v1/inbox/", 10) == 0) {
		char name[NAME_MAX_LEN * 3 + 1];
		CHECK(http_unescape(path + 10, strlen(path + 10), name,
		    sizeof name) == 0 && strcmp(name, who) == 0);
		each(a->body.p, a->body.len, is_message);
	} else
		CHECK(strcmp(a->body.p, "{\"ok\":true}") == 0); /* ack, release */
}

static void
run(struct http_req *q)
{
	struct relay_answer a, h;
	int early;

	memset(&a, 0, sizeof a);
	memset(&h, 0, sizeof h);
	buf_add(&said, q->body, q->body_len);
	early = relay_head(&rl, q, &h);
	relay_handle(&rl, q, &a);
	/* The head alone refuses what the whole request is refused a 401
	 * for, and only that, in the same words. */
	CHECK(early == (a.status == 401));
	CHECK(!early || (h.status == 401 && h.body.len == a.body.len &&
	    memcmp(h.body.p, a.body.p, a.body.len) == 0));
	buf_free(&h.body);
	answer_check(q, &a);
	if (trace)
		fprintf(stderr, "%s\n\n", ctx);
	buf_free(&a.body);
}

/* s[0..n) with the placeholders replaced by the tokens. */
static void
expand(const char *s, size_t n, struct buf *out)
{
	static const char *ph[] = { "@ROOM@", "@ALICE@", "@BOB@", "@NEW@" };
	const char *tok;
	size_t i = 0, k;

	while (i < n) {
		for (k = 0; k < 4; k++)
			if (n - i >= strlen(ph[k]) &&
			    memcmp(s + i, ph[k], strlen(ph[k])) == 0)
				break;
		if (k == 4) {
			buf_addc(out, s[i++]);
			continue;
		}
		i += strlen(ph[k]);
		if (k == 0)
			buf_adds(out, room);
		else if ((tok = token_of(k == 1 ? "alice" : k == 2 ? "bob" :
		    newest())))
			buf_adds(out, tok);
	}
}

/* Every whole request in raw HTTP bytes, as bch-relayd's loop. */
static void
raw_http(const char *s, size_t n)
{
	struct buf b = BUF_INIT;
	struct http_limits lim;
	size_t off = 0;
	int k;

	http_limits_default(&lim);
	lim.body = msg_request_max(&cfg.lim); /* as bch-relayd */
	expand(s, n, &b);
	for (k = 0; k < MAX_PIPELINED && off < b.len; k++) {
		struct http_req q;
		int status = 400;
		struct http_parse ps = HTTP_PARSE_INIT;
		long used = http_parse_request(&ps, b.p + off, b.len - off, &lim,
		    &q, &status);
		http_parse_free(&ps); /* a request not whole is given up on */
		if (used <= 0)
			break;
		run(&q);
		http_req_free(&q);
		off += (size_t)used;
	}
	buf_free(&b);
}

static int
tchar(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* Copy a line's bytes that a parsed request could hold. */
static void
take_line(const char **s, const char *end, char *out, size_t outsz, int sp)
{
	const char *nl = memchr(*s, '\n', (size_t)(end - *s));
	const char *e = nl ? nl : end;
	size_t w = 0;

	for (; *s < e; (*s)++) {
		unsigned char c = (unsigned char)**s;
		if (sp && c == ' ')
			break;
		if (w + 1 < outsz && c >= 0x20 && c != 0x7f)
			out[w++] = (char)c;
	}
	out[w] = 0;
	if (*s < end)
		(*s)++;
}

static void
one(const char *s, size_t n)
{
	const char *end = s + n, *p;
	unsigned char rb = n > 0 ? (unsigned char)s[0] : 0;
	unsigned char ab = n > 1 ? (unsigned char)s[1] : 0;
	size_t route = rb % (NROUTES + 2);
	struct http_req q;
	const char *tok;
	char *body;

	p = s + (n > 2 ? 2 : n);
	if (route == RAW_HTTP) {
		raw_http(p, (size_t)(end - p));
		return;
	}
	memset(&q, 0, sizeof q);
	q.keepalive = 1;
	if (route == RAW_LINE) {
		take_line(&p, end, q.method, sizeof q.method, 1);
		take_line(&p, end, q.path, sizeof q.path, 0);
		/* Only what http_parse_request lets through. */
		if (!q.method[0] || !q.path[0] || strchr(q.path, ' '))
			return;
		for (char *c = q.method; *c; c++)
			if (!tchar((unsigned char)*c))
				return;
		for (char *c = q.path; *c; c++)
			if ((unsigned char)*c >= 0x7f)
				return;
	} else {
		snprintf(q.method, sizeof q.method, "%s", routes[route].method);
		if (strstr(routes[route].path, "@NEW@"))
			snprintf(q.path, sizeof q.path, "/v1/inbox/%s", newest());
		else
			snprintf(q.path, sizeof q.path, "%s", routes[route].path);
	}
	switch (ab % NAUTH) {
	case 0: break;
	case 1: snprintf(q.auth, sizeof q.auth, "Bearer %s", room); break;
	case 2: snprintf(q.auth, sizeof q.auth, "Bearer %s", known[0].token);
		break;
	case 3: snprintf(q.auth, sizeof q.auth, "Bearer %s", known[1].token);
		break;
	case 4:
		tok = token_of(newest());
		snprintf(q.auth, sizeof q.auth, "Bearer %s", tok ? tok : "");
		break;
	case 5: snprintf(q.auth, sizeof q.auth, "Bearer wrong"); break;
	case 6: snprintf(q.auth, sizeof q.auth, "bearer %s", known[0].token);
		break;
	case 7: snprintf(q.auth, sizeof q.auth, "Basic %s", known[0].token);
		break;
	case 8: snprintf(q.auth, sizeof q.auth, "Bearer %sx", known[1].token);
		break;
	case 9: {
		/* The hash an agent record keeps is no token. */
		char h[65];
		hash_sha256_hex(known[0].token, 64, h);
		snprintf(q.auth, sizeof q.auth, "Bearer %s", h);
		break;
	}
	case 10: snprintf(q.auth, sizeof q.auth, "Bearer "); break;
	default: take_line(&p, end, q.auth, sizeof q.auth, 0); break;
	}
	body = xstrndup(p, (size_t)(end - p));
	q.body = body;
	q.body_len = (size_t)(end - p);
	run(&q);
	free(body);
}

static void
check_entries(const char *dir, int (*ok)(const char *, const char *))
{
	DIR *d = opendir(dir);
	struct dirent *e;

	setctx("under %s", dir);
	CHECK(d);
	while ((e = readdir(d))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		setctx("unexpected %s/%s", dir, e->d_name);
		CHECK(ok(dir, e->d_name));
	}
	closedir(d);
}

static int
is_dir(const char *dir, const char *name)
{
	char p[PATH_MAX];
	struct stat st;

	pathf(p, "%s/%s", dir, name);
	return lstat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int
is_file(const char *dir, const char *name)
{
	char p[PATH_MAX];
	struct stat st;

	pathf(p, "%s/%s", dir, name);
	return lstat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static int
outer_ok(const char *dir, const char *name)
{
	return strcmp(name, "home") == 0 && is_dir(dir, name);
}

static int
nothing_ok(const char *dir, const char *name)
{
	return 0;
}

static int
home_ok(const char *dir, const char *name)
{
	return (strcmp(name, "agents") == 0 || strcmp(name, "spool") == 0 ||
	    strcmp(name, "claimers") == 0) && is_dir(dir, name);
}

/* The relay's claimer lock, "<host>.<pid>" (claim.h), and no other. */
static int
claimers_ok(const char *dir, const char *name)
{
	char host[256], want[300];

	claim_host(host, sizeof host);
	snprintf(want, sizeof want, "%s.%ld", host, (long)getpid());
	return is_file(dir, name) && strcmp(name, want) == 0;
}

/* "<stem>.json" with a valid stem. */
static int
json_file(const char *name)
{
	size_t len = strlen(name);
	char stem[NAME_MAX_LEN + 1];

	if (len < 6 || len - 5 > NAME_MAX_LEN ||
	    strcmp(name + len - 5, ".json") != 0)
		return 0;
	memcpy(stem, name, len - 5);
	stem[len - 5] = 0;
	return name_valid(stem);
}

static int
agents_ok(const char *dir, const char *name)
{
	return is_file(dir, name) &&
	    (strcmp(name, ".lock") == 0 || json_file(name));
}

static int
message_ok(const char *dir, const char *name)
{
	char p[PATH_MAX];
	struct buf b = BUF_INIT;
	struct msg m;
	struct err e;
	int ok;

	if (!is_file(dir, name) || !json_file(name))
		return 0;
	pathf(p, "%s/%s", dir, name);
	ok = io_readfile(AT_FDCWD, p, cfg.rlim.total + 1, &b) == 0 &&
	    msg_decode(b.p, b.len, 0, &cfg.rlim, &m, &e) == 0;
	if (ok) {
		ok = strlen(m.id) + 5 == strlen(name) &&
		    strncmp(m.id, name, strlen(m.id)) == 0;
		msg_free(&m);
	}
	buf_free(&b);
	return ok;
}

static int
box_ok(const char *dir, const char *name)
{
	char p[PATH_MAX];

	if (!is_dir(dir, name))
		return 0;
	pathf(p, "%s/%s", dir, name);
	if (strcmp(name, "tmp") == 0)
		check_entries(p, nothing_ok);
	else if (strcmp(name, "new") == 0 || strcmp(name, "cur") == 0)
		check_entries(p, message_ok);
	else
		return 0; /* corrupt/: the relay stored what it cannot read */
	return 1;
}

static int
spool_ok(const char *dir, const char *name)
{
	char p[PATH_MAX];

	if (!name_valid(name) || !is_dir(dir, name))
		return 0;
	pathf(p, "%s/agents/%s.json", home, name);
	if (access(p, F_OK) != 0)
		return 0; /* an inbox for no agent */
	pathf(p, "%s/%s", dir, name);
	check_entries(p, box_ok);
	return 1;
}

/* Nothing but the spool's own layout, and nothing outside it. */
static void
check_tree(void)
{
	char p[PATH_MAX];

	check_entries(outer, outer_ok);
	check_entries(home, home_ok);
	pathf(p, "%s/agents", home);
	check_entries(p, agents_ok);
	pathf(p, "%s/spool", home);
	check_entries(p, spool_ok);
	pathf(p, "%s/claimers", home);
	if (access(p, F_OK) == 0)
		check_entries(p, claimers_ok);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data, *end = s + size;
	size_t i;
	int k;

	nknown = 2;
	nsent = 0;
	buf_reset(&said);
	for (k = 0; k < MAX_REQS && s <= end; k++) {
		const char *sep = memmem(s, (size_t)(end - s), SEP, strlen(SEP));
		const char *e = sep ? sep : end;
		one(s, (size_t)(e - s));
		if (!sep)
			break;
		s = sep + strlen(SEP);
	}
	/* Settle: leases go back, then the tree must be as it should. */
	close_relay();
	check_tree();
	build_base();
	open_relay();
	for (i = 0; i < nsent; i++)
		free(sent[i].answer);
	ctx[0] = 0;
	return 0;
}
