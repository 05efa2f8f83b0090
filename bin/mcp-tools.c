/* mcp-tools: bch-mcp's tools — what each does with the spool and what it
 * says back, as text for the model and as structuredContent — and the
 * table that tools/list and tools/call read them from. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "json.h"
#include "mcp.h"
#include "scope.h"
#include "show.h"

#define TEXT_BUDGET (64 * 1024) /* message text per result; the rest waits */

/* Claim it (the listed item it, or else the message with the whole id
 * id), to be settled when the answer is written. */
static int
take(struct call *k, const struct spool_item *it, const char *id,
    struct msg *m, int keep)
{
	struct server *s = k->s;
	struct cli *c = k->c;
	int rc;

	if (s->nheld == s->capheld) {
		s->capheld = s->capheld ? 2 * s->capheld : 16;
		s->held = xrealloc(s->held, s->capheld * sizeof *s->held);
	}
	rc = it ? spool_take(c->sp, c->cfg.agent, it, m, &s->held[s->nheld].c,
	    &c->e) : spool_take_id(c->sp, c->cfg.agent, id, m,
	    &s->held[s->nheld].c, &c->e);
	if (rc == 1)
		s->held[s->nheld++].keep = keep;
	return rc;
}

/* A failed call claims nothing: return what it took. */
void
unclaim(struct call *k)
{
	struct server *s = k->s;
	struct err e;

	while (s->nheld > k->held0)
		if (spool_release(k->c->sp, &s->held[--s->nheld].c, &e) < 0)
			fprintf(stderr, "%s: %s\n", k->c->prog, e.msg);
}

/* Index of the one unread item whose id is p or starts with p; -1 none
 * (an empty p names nothing, as in bch-claim), -2 several. */
static long
find_id(const struct spool_item *it, size_t n, const char *p)
{
	size_t i, len = strlen(p);
	long hit = -1;

	for (i = 0; i < n && len > 0 && len <= ID_MAX_LEN; i++) {
		if (strncmp(it[i].id, p, len) != 0)
			continue;
		if (strlen(it[i].id) == len)
			return (long)i;
		if (hit >= 0)
			return -2;
		hit = (long)i;
	}
	return hit;
}

enum { CLAIM, PEEK, READ };

struct tally {
	size_t shown, left, other;
};

/* Add m to the result, fenced in text and an object in data. */
static void
put_msg(struct call *k, struct buf *text, struct tally *y, struct msg *m,
    const char *fence)
{
	buf_adds(text, y->shown ? "\n" : "");
	buf_adds(&k->data, y->shown++ ? "," : "");
	show_hook(text, m, fence, 0);
	msg_encode(m, &k->data);
	msg_free(m);
}

/* bch_read: claim the listed message its id names and show it. A relay
 * lists an inbox over what one answer may hold in parts (spool->cut):
 * an id past the part is tried as a whole id, as no prefix can be
 * matched there. 0, or -1 (e). */
static int
read_one(struct call *k, const struct spool_item *it, size_t n,
    struct buf *text, struct tally *y)
{
	struct cli *c = k->c;
	char *id = arg_str(k, "id"), fence[9];
	long i = find_id(it, n, id ? id : "");
	int keep = json_is(k->j, arg(k, "keep"), "true"), rc = -1;
	struct msg m;

	if (i == -2) {
		err_set(&c->e, BCH_PERM, "id prefix \"%.64s\" matches "
		    "several messages — give more of the id", id);
	} else if (i == -1 && !(id && c->sp->cut)) {
		err_set(&c->e, BCH_PERM, "no unread message \"%.64s\" — "
		    "bch_peek lists the unread ones", id ? id : "");
	} else if ((rc = take(k, i >= 0 ? &it[i] : NULL, id, &m, keep)) == 1) {
		show_fence(fence);
		put_msg(k, text, y, &m, fence);
	} else if (rc == 0 && i >= 0) {
		err_set(&c->e, BCH_PERM, "message %s was claimed by another "
		    "reader", it[i].id);
	} else if (rc == 0) {
		err_set(&c->e, BCH_PERM, "no unread message \"%.64s\" among "
		    "the oldest the relay lists at once, nor one with that "
		    "whole id past them — past them, a prefix names nothing: "
		    "give the whole id", id);
	}
	free(id);
	return rc == 1 ? 0 : -1;
}

/* Claim (or peek at) the messages the call selects and show them, each
 * fenced in text and an object in structuredContent. 0, or -1 (e). */
static int
show(struct call *k, struct spool_item *it, size_t n, int mode,
    const char *mt, struct buf *text, struct tally *y)
{
	struct cli *c = k->c;
	char fence[9];
	size_t i;
	int keep = json_is(k->j, arg(k, "keep"), "true"), rc = 1;

	show_fence(fence);
	for (i = 0; i < n && rc >= 0; i++) {
		struct msg m;
		if ((mode == CLAIM || mt) && !scope_match(it[i].scope, mt)) {
			y->other++;
			continue;
		}
		if (y->shown && text->len >= TEXT_BUDGET) {
			y->left++;
			continue;
		}
		rc = mode == PEEK ? spool_peek(c->sp, c->cfg.agent, &it[i], &m,
		    &c->e) : take(k, &it[i], NULL, &m, keep);
		if (rc == 1)
			put_msg(k, text, y, &m, fence);
	}
	return rc < 0 ? -1 : 0;
}

/* The lines around the messages shown (text): the header or "inbox
 * empty", how many were left, and the scoped ones bch_inbox left. A
 * relay lists an inbox over what one answer may hold in parts, oldest
 * first (cut, after the n it listed): then the counts say that more
 * wait past them, a number nobody here knows, and nothing says "inbox
 * empty" — past them may be messages for this session. */
static void
frame(struct call *k, int mode, const struct tally *y, size_t n, int cut,
    const struct buf *text)
{
	const char *agent = k->c->cfg.agent, *next = mode == PEEK ?
	    "not shown — claim some first" : "left queued — call bch_inbox "
	    "again";

	if (y->shown)
		buf_printf(&k->text, "[backchannel] %zu message(s) for %s%s:\n\n",
		    y->shown, agent, mode == PEEK ? ", not claimed "
		    "(bch_inbox or bch_read claims them)" : "");
	else if (cut)
		buf_printf(&k->text, "[backchannel] more messages waiting for "
		    "%s than the relay lists at once, none of the oldest %zu "
		    "for this session — bch_peek without match lists them\n",
		    agent, n);
	else
		buf_adds(&k->text, "inbox empty\n");
	buf_add(&k->text, text->p, text->len);
	if (y->left)
		buf_printf(&k->text, "\n[backchannel] %zu more message(s) "
		    "waiting%s, %s\n", y->left, cut ? ", and more past them "
		    "that the relay did not list" : "", next);
	else if (cut && y->shown)
		buf_printf(&k->text, "\n[backchannel] more messages waiting "
		    "past these, that the relay did not list, %s\n", next);
	if (mode == CLAIM && y->other)
		buf_printf(&k->text, "\n[backchannel] %zu message(s) scoped to "
		    "other repositories left queued — bch_peek shows them; "
		    "claim with match or bch_read\n", y->other);
}

/* bch_inbox, bch_peek and bch_read. */
static int
tool_inbox(struct call *k, int mode)
{
	struct cli *c = k->c;
	struct spool_item *it;
	struct buf text = BUF_INIT;
	struct tally y = { 0, 0, 0 };
	size_t n;
	char *match = arg_str(k, "match");
	int rc, cut;

	if (spool_list(c->sp, c->cfg.agent, &it, &n, &c->e) < 0) {
		free(match);
		return fail(k, &c->e);
	}
	cut = c->sp->cut && mode != READ;
	buf_adds(&k->data, "{\"messages\":[");
	rc = mode == READ ? read_one(k, it, n, &text, &y) : show(k, it, n, mode,
	    match ? match : k->s->match, &text, &y);
	spool_items_free(it, n);
	free(match);
	if (rc < 0) {
		buf_free(&text);
		return fail(k, &c->e);
	}
	buf_printf(&k->data, "],\"more\":%zu,\"more_unlisted\":%s}", y.left,
	    cut ? "true" : "false");
	frame(k, mode, &y, n, cut, &text);
	buf_free(&text);
	return 0;
}

/* Fill m from the arguments of bch_send. */
static void
send_fields(struct call *k, struct msg *m)
{
	char *p = arg_str(k, "priority");
	int a = arg(k, "refs"), i, n;

	memset(m, 0, sizeof *m);
	m->from = xstrdup(k->c->cfg.agent);
	m->to = arg_str(k, "target");
	m->body = arg_text(k, "body");
	m->to = m->to ? m->to : xstrdup("");
	m->body = m->body ? m->body : xstrdup("");
	m->urgent = p && strcmp(p, "urgent") == 0;
	free(p);
	m->scope = arg_text(k, "scope");
	m->thread = arg_text(k, "thread");
	n = a < 0 ? 0 : k->j->t[a].size;
	m->refs = xcalloc((size_t)n + 1, sizeof *m->refs);
	for (i = a + 1; n-- > 0; i = json_next(k->j, i)) {
		char *r = NULL;
		if (json_text(k->j, i, line_max, &r, NULL) == 0 && *r)
			m->refs[m->nrefs++] = r;
		else
			free(r);
	}
}

#define WAIT_SLICE 2000 /* ms between looks for a cancellation */

/* spool_await() for secs seconds, in slices, so that a client that gives
 * up on the call (the SDKs time a call out after a minute, and send
 * notifications/cancelled) gets a server that answers again, not one
 * deaf for up to an hour. */
static int
await_call(struct call *k, const char *id, char **rcpt, size_t n,
    long long secs, int *got)
{
	struct timespec t0;
	long left;
	int rc;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		left = (long)secs * 1000 - io_ms_since(&t0);
		left = left < 0 ? 0 : left;
		rc = spool_await(k->c->sp, id, rcpt, n, left > WAIT_SLICE ?
		    WAIT_SLICE : (int)left, got, &k->c->e);
		if (rc != 0 || left <= WAIT_SLICE)
			return rc;
		if (cancelled(k->s, k->id, k->idlen)) {
			k->cancelled = 1;
			return 0;
		}
	}
}

/* wait_seconds: block until the recipients of id have read it, or the
 * time is up; say who has, in the text and as "read"/"unread". */
static int
send_wait(struct call *k, const char *id)
{
	struct spool *sp = k->c->sp;
	long long secs = 0;
	size_t i, n = sp->nrcpt;
	char **rcpt = xcalloc(n + 1, sizeof *rcpt);
	int *got = xcalloc(n + 1, sizeof *got), rc, pass;

	json_int(k->j, arg(k, "wait_seconds"), &secs);
	for (i = 0; i < n; i++)
		rcpt[i] = xstrdup(sp->rcpt[i]);
	rc = await_call(k, id, rcpt, n, secs, got);
	if (rc >= 0) {
		for (pass = 1; pass >= 0; pass--) {
			int first = 1;
			buf_adds(&k->data, pass ? ",\"read\":[" : ",\"unread\":[");
			for (i = 0; i < n; i++) {
				if (got[i] != pass)
					continue;
				buf_adds(&k->data, first ? "" : ",");
				put_str(&k->data, rcpt[i]);
				buf_printf(&k->text, "\n%s %s", pass ? "read by" :
				    "not read yet by", rcpt[i]);
				first = 0;
			}
			buf_addc(&k->data, ']');
		}
		if (!rc)
			buf_printf(&k->text, "\n(waited %lld s; the message stays "
			    "queued)", secs);
	}
	for (i = 0; i < n; i++)
		free(rcpt[i]);
	free(rcpt);
	free(got);
	return rc < 0 ? -1 : 0;
}

static int
tool_send(struct call *k, int flag)
{
	struct msg m;
	int n;

	send_fields(k, &m);
	if ((n = spool_send(k->c->sp, &m, &k->c->e)) < 0) {
		msg_free(&m);
		return fail(k, &k->c->e);
	}
	buf_printf(&k->text, "sent %.8s to %s (%d recipient%s)", m.id, m.to, n,
	    n == 1 ? "" : "s");
	buf_adds(&k->data, "{\"message\":");
	msg_encode(&m, &k->data);
	buf_printf(&k->data, ",\"recipients\":%d", n);
	/* Sent is sent: a wait that fails must not read as a failed send,
	 * or the agent sends again. */
	if (arg(k, "wait_seconds") >= 0 && send_wait(k, m.id) < 0) {
		buf_printf(&k->text, "\ncould not wait for read receipts: %s",
		    k->c->e.msg);
		buf_adds(&k->data, ",\"wait_error\":");
		put_str(&k->data, k->c->e.msg);
	}
	buf_addc(&k->data, '}');
	msg_free(&m);
	return 0;
}

static void
show_agent(struct call *k, const struct agent_rec *a, int first)
{
	size_t s;

	buf_adds(&k->text, a->name);
	if (strcmp(a->name, k->c->cfg.agent) == 0)
		buf_adds(&k->text, " (you)");
	buf_adds(&k->data, first ? "{\"name\":" : ",{\"name\":");
	put_str(&k->data, a->name);
	buf_adds(&k->data, ",\"subscriptions\":[");
	for (s = 0; s < a->nsubs; s++) {
		buf_printf(&k->text, "%s%s", s ? " " : "  ", a->subs[s]);
		buf_adds(&k->data, s ? "," : "");
		put_str(&k->data, a->subs[s]);
	}
	buf_addc(&k->data, ']');
	buf_adds(&k->text, "  last seen ");
	show_text(&k->text, a->seen[0] ? a->seen : "never", 0);
	buf_addc(&k->text, '\n');
	if (a->created[0])
		put_field(&k->data, "createdAt", a->created);
	if (a->seen[0])
		put_field(&k->data, "lastSeen", a->seen);
	buf_addc(&k->data, '}');
}

static int
tool_agents(struct call *k, int flag)
{
	struct agent_rec *a;
	size_t n, i;

	if (spool_agents(k->c->sp, &a, &n, &k->c->e) < 0)
		return fail(k, &k->c->e);
	buf_adds(&k->data, "{\"agents\":[");
	for (i = 0; i < n; i++)
		show_agent(k, &a[i], i == 0);
	buf_adds(&k->data, "]}");
	if (!n)
		buf_adds(&k->text, "no agents — each must run bch init <name>");
	agent_list_free(a, n);
	return 0;
}

static int
tool_channels(struct call *k, int flag)
{
	char **ch;
	size_t n, i;

	if (spool_channels(k->c->sp, &ch, &n, &k->c->e) < 0)
		return fail(k, &k->c->e);
	buf_adds(&k->data, "{\"channels\":[");
	for (i = 0; i < n; i++) {
		buf_printf(&k->text, "%s\n", ch[i]);
		buf_adds(&k->data, i ? "," : "");
		put_str(&k->data, ch[i]);
		free(ch[i]);
	}
	free(ch);
	buf_adds(&k->data, "]}");
	if (!n)
		buf_adds(&k->text, "no channels — bch_subscribe starts one");
	return 0;
}

static int
tool_subscribe(struct call *k, int on)
{
	struct cli *c = k->c;
	char *name = arg_str(k, "channel"), chan[NAME_MAX_LEN + 3];
	int rc = -1;

	if (!name || strlen(name) > NAME_MAX_LEN + 1) {
		err_set(&c->e, BCH_PERM, "invalid channel — use #name, with "
		    "letters, digits, '.', '_' and '-' (at most 64)");
	} else {
		snprintf(chan, sizeof chan, "%s%s", name[0] == '#' ? "" : "#",
		    name);
		rc = spool_subscribe(c->sp, c->cfg.agent, chan, on, &c->e);
	}
	free(name);
	if (rc < 0)
		return fail(k, &c->e);
	if (on)
		buf_printf(&k->text, rc ? "subscribed %s to %s" :
		    "%s is already subscribed to %s", c->cfg.agent, chan);
	else
		buf_printf(&k->text, rc ? "unsubscribed %s from %s" :
		    "%s was not subscribed to %s", c->cfg.agent, chan);
	buf_adds(&k->data, "{\"channel\":");
	put_str(&k->data, chan);
	buf_printf(&k->data, ",\"subscribed\":%s,\"changed\":%s}",
	    on ? "true" : "false", rc ? "true" : "false");
	return 0;
}

static int
tool_whoami(struct call *k, int flag)
{
	struct cli *c = k->c;
	const char *via = c->cfg.url ? c->cfg.url : "local spool";

	buf_printf(&k->text, "%s via ", c->cfg.agent);
	show_text(&k->text, via, 0);
	buf_adds(&k->data, "{\"agent\":");
	put_str(&k->data, c->cfg.agent);
	put_field(&k->data, "via", via);
	buf_addc(&k->data, '}');
	return 0;
}

#define MSG_SCHEMA \
	"{'type':'object','properties':{'id':{'type':'string'}," \
	"'from':{'type':'string'},'to':{'type':'string'}," \
	"'body':{'type':'string'},'priority':{'type':'string'," \
	"'enum':['normal','urgent']},'scope':{'type':'string'}," \
	"'thread':{'type':'string'},'refs':{'type':'array'," \
	"'items':{'type':'string'}},'ts':{'type':'string'}}," \
	"'required':['id','from','to','body','priority','ts']}"

#define LIST_SCHEMA \
	"{'type':'object','properties':{'messages':{'type':'array'," \
	"'items':" MSG_SCHEMA "},'more':{'type':'integer','description':" \
	"'messages left queued because the result was full'}," \
	"'more_unlisted':{'type':'boolean','description':'more messages " \
	"wait past those counted, that the relay did not list: it lists an " \
	"inbox over 8 MiB a part at a time, once older ones are claimed'}}," \
	"'required':['messages','more']}"

#define SUB_SCHEMA \
	"{'type':'object','properties':{'channel':{'type':'string'}," \
	"'subscribed':{'type':'boolean'},'changed':{'type':'boolean'}}," \
	"'required':['channel','subscribed','changed']}"

static const struct arg no_args[] = { { 0, 0, 0, 0 } };

static const struct arg send_args[] = {
	{ "target", A_STR, 1, "Recipient: \"@agent\" for one agent, or "
	    "\"#channel\" for every subscriber of the channel but you." },
	{ "body", A_TEXT, 1, "The message: plain text or markdown, at most "
	    BODY_MAX ". Say enough to act on without a reply." },
	{ "priority", A_ENUM, 0, "\"urgent\" may wake the recipient with a "
	    "desktop notification; keep it for what cannot wait. Default "
	    "\"normal\"." },
	{ "thread", A_TEXT, 0, "Id of the message this replies to." },
	{ "refs", A_STRS, 0, "Paths or URLs the message is about (at most "
	    "32, each at most 1 KiB)." },
	{ "scope", A_TEXT, 0, "Deliver only to readers working in this "
	    "repository, e.g. \"github.com/acme/api\"." },
	{ "wait_seconds", A_INT, 0, "For a hand-off: after sending, wait up "
	    "to this many seconds (at most 3600) until the recipients have "
	    "read the message; the result says who has and who has not." },
	{ 0, 0, 0, 0 },
};

static const struct arg match_args[] = {
	{ "match", A_STR, 0, "Your repository's origin URL or directory, "
	    "e.g. \"github.com/acme/api\": selects the messages scoped to "
	    "it." },
	{ 0, 0, 0, 0 },
};

static const struct arg read_args[] = {
	{ "id", A_STR, 1, "The message id, or a unique prefix of it such as "
	    "the 8-character short id." },
	{ "keep", A_BOOL, 0, "Keep a copy in the spool's cur/ folder." },
	{ 0, 0, 0, 0 },
};

static const struct arg chan_args[] = {
	{ "channel", A_STR, 1, "Channel name, \"#name\" (the # may be "
	    "left out)." },
	{ 0, 0, 0, 0 },
};

const struct tool tools[] = {
	{ "bch_send", "Send a message",
	    "Send a message to another agent (\"@name\") or to a channel "
	    "(\"#name\": every subscriber but you). Use it to tell other "
	    "agents or people what they need to know: a change that affects "
	    "them, a question, a hand-off. Delivery is asynchronous; they "
	    "read it when they next check their inbox. Fails if the agent "
	    "is unknown, the channel has no other subscribers, or the body "
	    "is over " BODY_MAX " (put a path or URL in refs instead).",
	    send_args, "{'type':'object','properties':{'message':" MSG_SCHEMA
	    ",'recipients':{'type':'integer'},'read':{'type':'array','items':"
	    "{'type':'string'}},'unread':{'type':'array','items':{'type':"
	    "'string'}}},'required':['message','recipients']}", 0, 0, 0, 1,
	    tool_send, 0 },
	{ "bch_inbox", "Read and claim new messages",
	    "Claim and return your unread messages, oldest first. Claiming "
	    "removes them from the inbox: each is delivered once, so act on "
	    "or note what you read. Check it when you start a task and "
	    "between steps when you work with other agents. Without match, "
	    "only messages sent without a scope are claimed; pass match to "
	    "also claim those scoped to your repository." UNTRUSTED,
	    match_args, LIST_SCHEMA, 0, 1, 0, 1, tool_inbox, CLAIM },
	{ "bch_peek", "List unread messages",
	    "List your unread messages without claiming them: they stay "
	    "queued. Use it to see what is waiting; bch_inbox then claims "
	    "them, or bch_read one by id. Without match it lists every "
	    "unread message; with match, those scoped to it or unscoped."
	    UNTRUSTED, match_args, LIST_SCHEMA, 1, 0, 1, 1, tool_inbox, PEEK },
	{ "bch_read", "Read and claim one message",
	    "Claim and return one unread message by its id or a unique "
	    "prefix of it (the short id bch_peek shows), whatever its scope."
	    UNTRUSTED, read_args, LIST_SCHEMA, 0, 1, 0, 1, tool_inbox, READ },
	{ "bch_agents", "List agents",
	    "List the agents on this backchannel, the channels each "
	    "subscribes to and when each last checked its inbox. Use it to "
	    "find the right @name before sending.", no_args,
	    "{'type':'object','properties':{'agents':{'type':'array',"
	    "'items':{'type':'object','properties':{'name':{'type':'string'},"
	    "'subscriptions':{'type':'array','items':{'type':'string'}},"
	    "'createdAt':{'type':'string'},'lastSeen':{'type':'string'}},"
	    "'required':['name','subscriptions']}}},'required':['agents']}",
	    1, 0, 1, 0, tool_agents, 0 },
	{ "bch_channels", "List channels",
	    "List the channels that have at least one subscriber.", no_args,
	    "{'type':'object','properties':{'channels':{'type':'array',"
	    "'items':{'type':'string'}}},'required':['channels']}", 1, 0, 1,
	    0, tool_channels, 0 },
	{ "bch_subscribe", "Subscribe to a channel",
	    "Subscribe to a channel so that messages posted to it reach your "
	    "inbox. A channel exists once someone subscribes to it.",
	    chan_args, SUB_SCHEMA, 0, 0, 1, 1, tool_subscribe, 1 },
	{ "bch_unsubscribe", "Unsubscribe from a channel",
	    "Stop receiving the messages posted to a channel.", chan_args,
	    SUB_SCHEMA, 0, 0, 1, 1, tool_subscribe, 0 },
	{ "bch_whoami", "Show your identity",
	    "Say which agent you are on backchannel (others reach you as "
	    "@name, and your messages come from it) and whether the spool "
	    "is local or a relay.", no_args,
	    "{'type':'object','properties':{'agent':{'type':'string'},"
	    "'via':{'type':'string'}},'required':['agent','via']}", 1, 0, 1,
	    1, tool_whoami, 0 },
};

const size_t ntools = sizeof tools / sizeof tools[0];
