/* agent: agent records, decoded and encoded. */
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "json.h"

static void
copy_str(const struct json *j, const char *key, char *out, size_t outsz)
{
	char *s = NULL;
	int i = json_get(j, 0, key);

	out[0] = 0;
	if (i >= 0 && json_string(j, i, outsz - 1, &s, NULL) == 0) {
		memcpy(out, s, strlen(s) + 1);
		free(s);
	}
}

int
agent_decode(const char *s, size_t n, struct agent_rec *a, struct err *e)
{
	struct json j;
	const char *why = NULL;
	char *name = NULL;
	int i, k, t;

	memset(a, 0, sizeof *a);
	if (json_parse(&j, s, n, 8, &why) < 0)
		return err_set(e, BCH_PERM, "malformed agent record: %s", why);
	if (j.t[0].type != JSON_OBJECT)
		goto bad;
	i = json_get(&j, 0, "name");
	if (i < 0 || json_string(&j, i, NAME_MAX_LEN, &name, NULL) < 0)
		goto bad;
	if (!name_valid(name)) {
		free(name);
		goto bad;
	}
	memcpy(a->name, name, strlen(name) + 1);
	free(name);
	copy_str(&j, "createdAt", a->created, sizeof a->created);
	copy_str(&j, "lastSeen", a->seen, sizeof a->seen);
	i = json_get(&j, 0, "tokenHash");
	if (i >= 0 && j.t[i].type == JSON_STRING)
		json_string(&j, i, 128, &a->token_hash, NULL);
	i = json_get(&j, 0, "token");
	if (i >= 0 && j.t[i].type == JSON_STRING)
		json_string(&j, i, 512, &a->token, NULL);
	i = json_get(&j, 0, "subscriptions");
	if (i >= 0 && j.t[i].type == JSON_ARRAY) {
		a->subs = xcalloc((size_t)j.t[i].size + 1, sizeof *a->subs);
		for (k = 0, t = i + 1; k < j.t[i].size; k++, t = json_next(&j, t)) {
			char *c = NULL;
			if (json_string(&j, t, NAME_MAX_LEN + 1, &c, NULL) < 0)
				continue;
			if (c[0] == '#' && name_valid(c + 1))
				a->subs[a->nsubs++] = c;
			else
				free(c);
		}
	}
	json_free(&j);
	return 0;
bad:
	json_free(&j);
	agent_free(a);
	return err_set(e, BCH_PERM, "malformed agent record");
}

void
agent_encode(const struct agent_rec *a, struct buf *b, int with_hash)
{
	size_t i;

	buf_adds(b, "{\n  \"name\": ");
	json_put_string(b, a->name, strlen(a->name));
	buf_adds(b, ",\n  \"subscriptions\": [");
	for (i = 0; i < a->nsubs; i++) {
		buf_adds(b, i ? ",\n    " : "\n    ");
		json_put_string(b, a->subs[i], strlen(a->subs[i]));
	}
	buf_adds(b, a->nsubs ? "\n  ],\n  \"createdAt\": " : "],\n  \"createdAt\": ");
	json_put_string(b, a->created, strlen(a->created));
	buf_adds(b, ",\n  \"lastSeen\": ");
	json_put_string(b, a->seen, strlen(a->seen));
	if (with_hash && a->token_hash) {
		buf_adds(b, ",\n  \"tokenHash\": ");
		json_put_string(b, a->token_hash, strlen(a->token_hash));
	}
	buf_adds(b, "\n}");
}

int
agent_has_sub(const struct agent_rec *a, const char *channel)
{
	size_t i;

	for (i = 0; i < a->nsubs; i++)
		if (strcmp(a->subs[i], channel) == 0)
			return (int)i;
	return -1;
}

void
agent_copy(struct agent_rec *dst, const struct agent_rec *src)
{
	size_t i;

	*dst = *src;
	dst->subs = xcalloc(src->nsubs + 1, sizeof *dst->subs);
	for (i = 0; i < src->nsubs; i++)
		dst->subs[i] = xstrdup(src->subs[i]);
	dst->token_hash = src->token_hash ? xstrdup(src->token_hash) : NULL;
	dst->token = src->token ? xstrdup(src->token) : NULL;
}

void
agent_free(struct agent_rec *a)
{
	size_t i;

	for (i = 0; i < a->nsubs; i++)
		free(a->subs[i]);
	free(a->subs);
	free(a->token_hash);
	free(a->token);
	memset(a, 0, sizeof *a);
}
