/* spool: picks the implementation the configuration names and holds
 * what every implementation shares. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "spool.h"

struct spool *
spool_open(struct config *c, const char *prog, struct err *e)
{
	if (c->url)
		return spool_http_open(c, prog, e);
	return spool_fs_open(c, prog, e);
}

void
spool_close(struct spool *s)
{
	if (!s)
		return;
	spool_set_rcpt(s, NULL, 0);
	free(s->rcpt);
	spool_items_free(s->scanned, s->nscanned);
	free(s->scanned_for);
	s->ops->close(s);
}

int
spool_register(struct spool *s, const char *name, struct agent_rec *out,
    struct err *e)
{
	if (!name_valid(name))
		return err_set(e, BCH_PERM,
		    "invalid agent name — use letters, digits, '.', '_' and "
		    "'-', starting with a letter or digit, at most 64");
	return s->ops->reg(s, name, NULL, out, e);
}

int
spool_register_token(struct spool *s, const char *name,
    const char *token_hash, struct agent_rec *out, struct err *e)
{
	if (!name_valid(name))
		return err_set(e, BCH_PERM, "invalid agent name");
	return s->ops->reg(s, name, token_hash, out, e);
}

static int
cmp_agent(const void *a, const void *b)
{
	return strcmp(((const struct agent_rec *)a)->name,
	    ((const struct agent_rec *)b)->name);
}

int
spool_agents(struct spool *s, struct agent_rec **list, size_t *n,
    struct err *e)
{
	if (s->ops->agents(s, list, n, e) < 0)
		return -1;
	if (*n)
		qsort(*list, *n, sizeof **list, cmp_agent);
	return 0;
}

void
agent_list_free(struct agent_rec *list, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		agent_free(&list[i]);
	free(list);
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int
spool_channels(struct spool *s, char ***list, size_t *n, struct err *e)
{
	struct agent_rec *a;
	size_t na, i, k, cap = 0, w = 0;
	char **out = NULL;

	if (spool_agents(s, &a, &na, e) < 0)
		return -1;
	for (i = 0; i < na; i++)
		cap += a[i].nsubs;
	out = xcalloc(cap + 1, sizeof *out);
	for (i = 0; i < na; i++)
		for (k = 0; k < a[i].nsubs; k++)
			out[w++] = xstrdup(a[i].subs[k]);
	agent_list_free(a, na);
	if (w)
		qsort(out, w, sizeof *out, cmp_str);
	for (i = 0, k = 0; i < w; i++) {
		if (k && strcmp(out[k - 1], out[i]) == 0) {
			free(out[i]);
			continue;
		}
		out[k++] = out[i];
	}
	*list = out;
	*n = k;
	return 0;
}

int
spool_subscribe(struct spool *s, const char *agent, const char *channel,
    int on, struct err *e)
{
	if (channel[0] != '#' || !name_valid(channel + 1))
		return err_set(e, BCH_PERM,
		    "invalid channel — use #name, with letters, digits, '.', "
		    "'_' and '-'");
	return s->ops->subscribe(s, agent, channel, on, e);
}

int
spool_send(struct spool *s, struct msg *m, struct err *e)
{
	return s->ops->send(s, m, e);
}

int
spool_prepare(struct spool *s, struct msg *m, struct err *e)
{
	char to[NAME_MAX_LEN + 3];

	if (!m->from || !name_valid(m->from))
		return err_set(e, BCH_PERM, "invalid sender name");
	if (target_parse(m->to, to, sizeof to, e) < 0 ||
	    msg_check(m, &s->cfg->lim, e) < 0)
		return -1;
	free(m->to);
	m->to = xstrdup(to);
	if (!m->id[0]) {
		if (uuid_v4(m->id) < 0)
			return err_sys(e, "cannot get random bytes for an id");
		m->id_made = 1;
	}
	if (!id_valid(m->id))
		return err_set(e, BCH_PERM, "invalid message id");
	ts_now(m->ts);
	return 0;
}

int
spool_encode(struct spool *s, const struct msg *m, struct buf *b,
    struct err *e)
{
	msg_encode(m, b);
	buf_addc(b, '\n');
	if (b->len <= s->cfg->lim.total)
		return 0;
	err_set(e, BCH_PERM, "message is %zu bytes encoded, over the limit "
	    "of %zu", b->len, s->cfg->lim.total);
	return err_status(e, 413);
}

int
spool_sync(struct spool *s, struct err *e)
{
	return s->ops->sync(s, e);
}

static int
cmp_item(const void *pa, const void *pb)
{
	const struct spool_item *a = pa, *b = pb;
	int c = strcmp(a->ts, b->ts);

	return c ? c : strcmp(a->id, b->id);
}

int
spool_list(struct spool *s, const char *agent, struct spool_item **items,
    size_t *n, struct err *e)
{
	/* The order is the interface's promise, kept here for every spool. */
	if (s->ops->list(s, agent, items, n, e) < 0)
		return -1;
	if (*n > 1)
		qsort(*items, *n, sizeof **items, cmp_item);
	return 0;
}

void
spool_items_free(struct spool_item *items, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(items[i].name);
		free(items[i].scope);
		free(items[i].raw);
	}
	free(items);
}

static int
cmp_id(const void *pa, const void *pb)
{
	const struct spool_item *a = pa, *b = pb;

	return strcmp(a->id, b->id);
}

int
spool_scan(struct spool *s, const char *agent,
    void (*fn)(void *, const struct spool_item *), void *arg, struct err *e)
{
	size_t i;

	if (s->ops->scan)
		return s->ops->scan(s, agent, fn, arg, e);
	/* A relay's answer is in memory whole anyway; keeping the items
	 * lets a peek of one named by id alone find the bytes it needs. */
	spool_items_free(s->scanned, s->nscanned);
	free(s->scanned_for);
	s->scanned = NULL;
	s->nscanned = 0;
	s->scanned_for = NULL;
	if (s->ops->list(s, agent, &s->scanned, &s->nscanned, e) < 0) {
		s->scanned = NULL;
		s->nscanned = 0;
		return -1;
	}
	s->scanned_for = xstrdup(agent);
	if (s->nscanned > 1)
		qsort(s->scanned, s->nscanned, sizeof *s->scanned, cmp_id);
	for (i = 0; i < s->nscanned; i++)
		fn(arg, &s->scanned[i]);
	return 0;
}

/* The item the last scan listed for one named by id alone, if any. */
static const struct spool_item *
scanned(const struct spool *s, const char *agent, const struct spool_item *it)
{
	const struct spool_item *hit;

	if (!s->nscanned || it->raw || strcmp(agent, s->scanned_for) != 0)
		return it;
	hit = bsearch(it, s->scanned, s->nscanned, sizeof *hit, cmp_id);
	return hit ? hit : it;
}

int
spool_peek(struct spool *s, const char *agent, const struct spool_item *it,
    struct msg *m, struct err *e)
{
	return s->ops->peek(s, agent, scanned(s, agent, it), m, e);
}

int
spool_take(struct spool *s, const char *agent, const struct spool_item *it,
    struct msg *m, struct spool_claim *c, struct err *e)
{
	memset(c, 0, sizeof *c);
	return s->ops->take(s, agent, scanned(s, agent, it), m, c, e);
}

int
spool_take_id(struct spool *s, const char *agent, const char *id,
    struct msg *m, struct spool_claim *c, struct err *e)
{
	struct spool_item it;
	char name[ID_MAX_LEN + 6];

	/* What is no id names no message: not worth a question. */
	if (!*id || strlen(id) > ID_MAX_LEN || !id_valid(id))
		return 0;
	memset(&it, 0, sizeof it);
	snprintf(it.id, sizeof it.id, "%s", id);
	snprintf(name, sizeof name, "%s.json", id);
	it.name = name;
	return spool_take(s, agent, &it, m, c, e);
}

int
spool_ack(struct spool *s, struct spool_claim *c, int keep, struct err *e)
{
	return s->ops->ack(s, c, keep, e);
}

int
spool_release(struct spool *s, struct spool_claim *c, struct err *e)
{
	return s->ops->release(s, c, e);
}

int
spool_wait(struct spool *s, const char *agent, int timeout_ms, struct err *e)
{
	return s->ops->wait(s, agent, timeout_ms, e);
}

void
spool_arrived(struct spool *s, struct spool_item **items, size_t *n)
{
	*items = NULL;
	*n = 0;
	if (s->ops->arrived)
		s->ops->arrived(s, items, n);
}

int
spool_await(struct spool *s, const char *id, char **rcpt, size_t n,
    int timeout_ms, int *read, struct err *e)
{
	return s->ops->await(s, id, rcpt, n, timeout_ms, read, e);
}

void
spool_set_rcpt(struct spool *s, char **r, size_t n)
{
	size_t i;

	for (i = 0; i < s->nrcpt; i++)
		free(s->rcpt[i]);
	free(s->rcpt);
	s->rcpt = xcalloc(n + 1, sizeof *s->rcpt);
	for (i = 0; i < n; i++)
		s->rcpt[i] = xstrdup(r[i]);
	s->nrcpt = n;
}
