/* agent fuzz target: agent_decode of a record, then agent_encode and
 * decode again, which must give the same record and the same text. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "json.h"

#include "check.h"

static void
check_same(const struct agent_rec *a, const struct agent_rec *b,
    int with_hash)
{
	size_t i;

	CHECK(strcmp(a->name, b->name) == 0);
	CHECK(strcmp(a->created, b->created) == 0);
	CHECK(strcmp(a->seen, b->seen) == 0);
	CHECK(a->nsubs == b->nsubs);
	for (i = 0; i < a->nsubs; i++)
		CHECK(strcmp(a->subs[i], b->subs[i]) == 0);
	if (!with_hash || !a->token_hash)
		CHECK(!b->token_hash);
	else
		CHECK(b->token_hash && strcmp(a->token_hash, b->token_hash) == 0);
}

static void
check_valid(const struct agent_rec *a)
{
	size_t i;

	CHECK(name_valid(a->name));
	CHECK(strlen(a->created) < sizeof a->created);
	CHECK(strlen(a->seen) < sizeof a->seen);
	CHECK(!a->token_hash || strlen(a->token_hash) <= 128);
	for (i = 0; i < a->nsubs; i++) {
		CHECK(a->subs[i][0] == '#' && name_valid(a->subs[i] + 1));
		CHECK(agent_has_sub(a, a->subs[i]) >= 0);
		CHECK((size_t)agent_has_sub(a, a->subs[i]) <= i);
	}
	CHECK(agent_has_sub(a, "") == -1);
}

static void
roundtrip(const struct agent_rec *a, int with_hash)
{
	struct buf x = BUF_INIT, y = BUF_INIT;
	struct agent_rec b;
	struct err e;

	agent_encode(a, &x, with_hash);
	CHECK(x.len == strlen(x.p));
	if (agent_decode(x.p, x.len, &b, &e) < 0) {
		fprintf(stderr, "re-decode: %s\n%s\n", e.msg, x.p);
		CHECK(0);
	}
	check_same(a, &b, with_hash);
	agent_encode(&b, &y, with_hash);
	CHECK(x.len == y.len && memcmp(x.p, y.p, x.len) == 0);
	agent_free(&b);
	buf_free(&x);
	buf_free(&y);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct agent_rec a;
	struct err e;

	memset(&e, 0, sizeof e);
	if (agent_decode((const char *)data, size, &a, &e) < 0) {
		CHECK(e.code == BCH_PERM && e.msg[0]);
		CHECK(!a.subs && !a.token_hash && !a.nsubs);
		return 0;
	}
	check_valid(&a);
	roundtrip(&a, 1);
	roundtrip(&a, 0);
	agent_free(&a);
	return 0;
}
