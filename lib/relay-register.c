/* relay-register: POST /v1/register (PROTOCOL.md 5): the room token
 * registers a free name under a new personal token (or one the caller
 * chose, ext), a name's own token refreshes its record. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "hash.h"
#include "json.h"
#include "relay-impl.h"

static void
put_agent(struct buf *b, const struct agent_rec *a, const char *token)
{
	agent_encode(a, b, 0);
	if (token) {
		b->len -= 2; /* reopen the object ("\n}") for the token */
		buf_adds(b, ",\n  \"token\": ");
		json_put_string(b, token, strlen(token));
		buf_adds(b, "\n}");
	}
}

/* A refresh: the name's own token, no new token (token, when the
 * caller registered under a token it chose: a retry, answered as the
 * first attempt was). */
static void
register_refresh(struct relay *r, const char *name, const char *token,
    struct relay_answer *a)
{
	struct agent_rec rec;
	struct err e;

	if (spool_register(r->sp, name, &rec, &e) < 0) {
		if (r->sp->shared)
			return relay_fail_err(a, &e);
		return relay_fail(a, 500, "cannot update the agent record");
	}
	a->status = 200;
	put_agent(&a->body, &rec, token);
	agent_free(&rec);
}

/* A name is taken once it has a record: locally made or registered.
 * 1 if name is free; 0, with a answered, if it is taken or the records
 * cannot be read. */
static int
name_free(struct relay *r, const char *name, struct relay_answer *a)
{
	struct agent_rec *all;
	size_t n, i;
	int taken = 0;
	struct err e;

	if (spool_agents(r->sp, &all, &n, &e) < 0) {
		relay_fail_err(a, &e);
		return 0;
	}
	for (i = 0; i < n; i++)
		if (strcmp(all[i].name, name) == 0)
			taken = 1;
	agent_list_free(all, n);
	if (taken)
		relay_fail(a, 409, "name already registered — pick "
		    "another, or use that name's own token");
	return !taken;
}

/* A new name: a new personal token (the one the caller chose, else
 * one of ours), answered once and kept as its hash. */
static void
register_new(struct relay *r, const char *name, const char *mine,
    struct relay_answer *a)
{
	struct agent_rec rec;
	struct err e;
	char token[65], hash[65];
	int rc;

	if (mine)
		snprintf(token, sizeof token, "%s", mine);
	else if (hash_random_hex(token, 32) < 0)
		return relay_fail(a, 503,
		    "no randomness for a token, try again");
	hash_sha256_hex(token, 64, hash);
	if ((rc = spool_register_token(r->sp, name, hash, &rec, &e)) < 0) {
		/* 409: another relay was first, or the record is there but
		 * unreadable (its name is still taken). */
		if (r->sp->shared || e.status == 409)
			return relay_fail_err(a, &e);
		return relay_fail(a, 503, "cannot write the agent record");
	}
	relay_tok_put(r, hash, name);
	a->status = rc == 1 ? 200 : 201; /* 1: a retry, through another relay */
	put_agent(&a->body, &rec, token);
	agent_free(&rec);
}

/* The room token with a "token" the caller chose (ext): a retry of a
 * registration whose answer was lost finds that token already the
 * name's, and is answered as the first attempt was; any other owner of
 * it is a 409. The name, if free, is registered under it. On a shared
 * spool another relay may be registering the same at this moment: the
 * spool checks name and token with the write, in one step, and what
 * was looked at here may be stale by then. */
static void
register_chosen(struct relay *r, const char *name, const char *mine,
    struct relay_answer *a)
{
	struct err te;
	struct relay_token *t = relay_tok_find(r, mine, &te);

	if (te.code)
		relay_fail_err(a, &te);
	else if (t && strcmp(t->agent, name) == 0)
		register_refresh(r, name, mine, a);
	else if (t)
		relay_fail(a, 409, "that token is taken — choose another");
	else if (r->sp->shared || name_free(r, name, a))
		register_new(r, name, mine, a);
}

/* POST /v1/register: the room token registers a free name, a name's own
 * token (c->t) refreshes its record. The checks go in this order (the
 * token's first, in gate()) so that an answer says no more than the
 * caller's token entitles it to. */
void
relay_route_register(struct relay *r, const struct http_req *q,
    const struct caller *c, struct relay_answer *a)
{
	struct relay_token *own = c->t;
	int bad = 0, badtok = 0;
	char *name = relay_field(q, "name", NAME_MAX_LEN + 8, &bad);
	char *mine = relay_field(q, "token", 80, &badtok);

	if (bad || !name || !name_valid(name))
		relay_fail(a, 400, "invalid name — letters, digits, '.', '_' "
		    "and '-', at most 64");
	else if (badtok || (mine && !hash_hex64(mine)))
		relay_fail(a, 400, "invalid token field — 64 lowercase hex "
		    "digits");
	else if (own && strcmp(own->agent, name) == 0)
		register_refresh(r, name, NULL, a);
	else if (!c->room)
		relay_fail(a, 403, "this token belongs to another agent");
	else if (mine)
		register_chosen(r, name, mine, a);
	else if (name_free(r, name, a))
		register_new(r, name, NULL, a);
	free(name);
	free(mine);
}
