/* spool-redis-lua: the Lua scripts of the spool in Redis, one for each
 * rule of PROTOCOL.md 2, so that each runs alone on the server (the design
 * rationale is in spool-redis.c). */
#include "spool-redis.h"

/* clang-format off */
/* Scripts that read the clock and then write need effects replication,
 * the default since Redis 5; asking for it keeps 3.2 and 4 working. */
#define NOW \
	"if redis.replicate_commands then redis.replicate_commands() end\n" \
	"local function now_ms() local t = redis.call('TIME')\n" \
	" return tonumber(t[1]) * 1000 +\n" \
	"  math.floor(tonumber(t[2]) / 1000) end\n"

/* Put back what the leases that ran out hold; ARGV[1] prefix, [2] channel. */
#define EXPIRE \
	"local function expire(p, chan)\n" \
	" local due = redis.call('ZRANGEBYSCORE', p .. 'leases', '-inf',\n" \
	"  now_ms(), 'LIMIT', 0, 512)\n" \
	" for _, m in ipairs(due) do\n" \
	"  redis.call('ZREM', p .. 'leases', m)\n" \
	"  local sp = string.find(m, ' ', 1, true)\n" \
	"  if sp then\n" \
	"   local a, id = string.sub(m, 1, sp - 1), string.sub(m, sp + 1)\n" \
	"   local v = redis.call('HGET', p .. 'claim:' .. a, id)\n" \
	"   if v then\n" \
	"    redis.call('HDEL', p .. 'claim:' .. a, id)\n" \
	"    if redis.call('HSETNX', p .. 'new:' .. a, id, v) == 1 then\n" \
	"     redis.call('PUBLISH', chan, id .. ' ' .. a .. '\\n' .. v) end\n" \
	"   end\n" \
	"  end\n" \
	" end\n" \
	" return #due\n" \
	"end\n"

/* Is the stored message json from this sender? Unreadable is not. */
#define SAME \
	"local function same_sender(json, from)\n" \
	" local ok, m = pcall(cjson.decode, json)\n" \
	" return ok and type(m) == 'table' and m.from == from\n" \
	"end\n"

/* Take one send from the bucket at key k (rate per second, burst): 0,
 * else the milliseconds until there is one. */
#define RATE \
	"local function take(k, rate, burst)\n" \
	" local now = now_ms() / 1000\n" \
	" local v = redis.call('HMGET', k, 't', 'l')\n" \
	" local tok, last = tonumber(v[1]) or burst, tonumber(v[2]) or now\n" \
	" if now > last then\n" \
	"  tok = math.min(burst, tok + (now - last) * rate) end\n" \
	" local wait = 0\n" \
	" if tok >= 1 then tok = tok - 1\n" \
	" else wait = math.ceil((1 - tok) / rate * 1000) end\n" \
	" redis.call('HSET', k, 't', tostring(tok), 'l', tostring(now))\n" \
	" redis.call('PEXPIRE', k, math.ceil(burst / rate * 1000) + 1000)\n" \
	" return wait\n" \
	"end\n"

const char *const rd_scripts[NSCRIPTS] = {
	/* reg: p, name, ts, tokenHash or "". A token is one name's: taken
	 * by another, 'tokentaken'; the name's own already (a retry through
	 * any relay), 'again', a refresh; a name taken otherwise, 'taken'. */
	"local p, n, ts, th = ARGV[1], ARGV[2], ARGV[3], ARGV[4]\n"
	"local k = p .. 'agent:' .. n\n"
	"local exists = redis.call('EXISTS', k) == 1\n"
	"local how = 'ok'\n"
	"if th ~= '' then\n"
	" local owner = redis.call('HGET', p .. 'tokens', th)\n"
	" if owner and owner ~= n then return {'tokentaken'} end\n"
	" if exists and (not owner or\n"
	"  redis.call('HGET', k, 'tokenHash') ~= th) then\n"
	"  return {'taken'} end\n"
	" if exists then how, th = 'again', '' end\n"
	"end\n"
	"if not exists then\n"
	" redis.call('HSET', k, 'createdAt', ts)\n"
	" redis.call('SADD', p .. 'agents', n)\n"
	"end\n"
	"redis.call('HSET', k, 'lastSeen', ts)\n"
	"if th ~= '' then\n"
	" redis.call('HSET', k, 'tokenHash', th)\n"
	" redis.call('HSET', p .. 'tokens', th, n)\n"
	"end\n"
	"local v = redis.call('HMGET', k, 'createdAt', 'lastSeen',\n"
	" 'tokenHash')\n"
	"local out = {how, v[1] or '', v[2] or '', v[3] or ''}\n"
	"local subs = redis.call('LRANGE', p .. 'subs:' .. n, 0, -1)\n"
	"for _, c in ipairs(subs) do\n"
	" out[#out + 1] = c end\n"
	"return out\n",

	/* agents: p */
	"local p, out = ARGV[1], {}\n"
	"for _, n in ipairs(redis.call('SMEMBERS', p .. 'agents')) do\n"
	" local v = redis.call('HMGET', p .. 'agent:' .. n, 'createdAt',\n"
	"  'lastSeen', 'tokenHash')\n"
	" out[#out + 1] = {n, v[1] or '', v[2] or '', v[3] or '',\n"
	"  redis.call('LRANGE', p .. 'subs:' .. n, 0, -1)}\n"
	"end\n"
	"return out\n",

	/* subscribe: p, agent, channel, on */
	"local p, a, c = ARGV[1], ARGV[2], ARGV[3]\n"
	"if redis.call('EXISTS', p .. 'agent:' .. a) == 0 then return -1 end\n"
	"if ARGV[4] == '1' then\n"
	" if redis.call('SADD', p .. 'chan:' .. c, a) == 0 then return 0 end\n"
	" redis.call('RPUSH', p .. 'subs:' .. a, c)\n"
	" return 1\n"
	"end\n"
	"if redis.call('SREM', p .. 'chan:' .. c, a) == 0 then return 0 end\n"
	"redis.call('LREM', p .. 'subs:' .. a, 0, c)\n"
	"return 1\n",

	/* send: p, channel, from, to, id, json, max inbox, once, ttl,
	 * rate, burst (rate '': none). A client id (once) may be another
	 * sender's in some inbox, new or claimed: then nothing is stored or
	 * pushed ('idused'); an inbox holding the sender's own copy, new,
	 * claimed or kept, is a retry's, skipped, however long after the
	 * sent: key that remembers the id expired, and however full it is
	 * since: the quota ('full') is asked only of the inboxes still to
	 * be given the message, all before any is. Another sender's kept
	 * message is no bar: it was read (settle keeps this one beside
	 * it). An id made here is no other message's: no inbox is looked
	 * at for it. */
	NOW RATE SAME
	"local p, from, to, id = ARGV[1], ARGV[3], ARGV[4], ARGV[5]\n"
	"if redis.call('SISMEMBER', p .. 'agents', from) == 0 then\n"
	" return {'nosender', from} end\n"
	"local sent = p .. 'sent:' .. from .. ' ' .. id\n"
	"if ARGV[8] == '1' then\n"
	" local old = redis.call('HMGET', sent, 'm', 'r')\n"
	" if old[1] then return {'dup', old[1], old[2]} end\n"
	"end\n"
	"if ARGV[10] ~= '' then\n"
	" local w = take(p .. 'rate:' .. from, tonumber(ARGV[10]),\n"
	"  tonumber(ARGV[11]))\n"
	" if w > 0 then return {'rate', tostring(w)} end\n"
	"end\n"
	"local r = {}\n"
	"if string.sub(to, 1, 1) == '@' then\n"
	" local a = string.sub(to, 2)\n"
	" if redis.call('SISMEMBER', p .. 'agents', a) == 0 then\n"
	"  return {'unknown', a} end\n"
	" r[1] = a\n"
	"else\n"
	" for _, a in ipairs(redis.call('SMEMBERS', p .. 'chan:' .. to)) do\n"
	"  if a ~= from then r[#r + 1] = a end\n"
	" end\n"
	" if #r == 0 then return {'empty', to} end\n"
	"end\n"
	"local max, call, v = tonumber(ARGV[7]), redis.call, ARGV[6]\n"
	"local once, w = ARGV[8] == '1', {}\n"
	"for _, a in ipairs(r) do\n"
	" local o, mine\n"
	" if once then\n"
	"  o = call('HGET', p .. 'new:' .. a, id) or\n"
	"   call('HGET', p .. 'claim:' .. a, id)\n"
	"  if o then\n"
	"   if not same_sender(o, from) then return {'idused', a} end\n"
	"   mine = true\n"
	"  else\n"
	"   o = call('HGET', p .. 'kept:' .. a, id)\n"
	"   mine = o and same_sender(o, from)\n"
	"  end\n"
	" end\n"
	" if not mine then w[#w + 1] = a end\n"
	"end\n"
	"for _, a in ipairs(w) do\n"
	" if call('HLEN', p .. 'new:' .. a) >= max then\n"
	"  return {'full', a} end\n"
	"end\n"
	"for _, a in ipairs(w) do call('HSETNX', p .. 'new:' .. a, id, v) end\n"
	"local names, put = table.concat(r, ' '), table.concat(w, ' ')\n"
	"if once then\n"
	" call('HSET', sent, 'm', v, 'r', names)\n"
	" call('EXPIRE', sent, tonumber(ARGV[9]))\n"
	"end\n"
	"if put ~= '' then\n"
	" call('PUBLISH', ARGV[2], id .. ' ' .. put .. '\\n' .. v) end\n"
	"return {'ok', names}\n",

	/* list: p, channel, agent, ts */
	NOW EXPIRE
	"expire(ARGV[1], ARGV[2])\n"
	"local k = ARGV[1] .. 'agent:' .. ARGV[3]\n"
	"if redis.call('EXISTS', k) == 0 then return false end\n"
	"local seen = redis.call('HGET', k, 'lastSeen')\n"
	"if not seen or\n"
	" string.sub(seen, 1, 16) ~= string.sub(ARGV[4], 1, 16) then\n"
	" redis.call('HSET', k, 'lastSeen', ARGV[4]) end\n"
	"return redis.call('HGETALL', ARGV[1] .. 'new:' .. ARGV[3])\n",

	/* take: p, agent, id, ms */
	NOW
	"local p, a, id = ARGV[1], ARGV[2], ARGV[3]\n"
	"local v = redis.call('HGET', p .. 'new:' .. a, id)\n"
	"if not v then return false end\n"
	"redis.call('HDEL', p .. 'new:' .. a, id)\n"
	"redis.call('HSET', p .. 'claim:' .. a, id, v)\n"
	"redis.call('ZADD', p .. 'leases', now_ms() + tonumber(ARGV[4]),\n"
	" a .. ' ' .. id)\n"
	"return v\n",

	/* lease: p, agent, id, ms */
	NOW
	"local p, a, id = ARGV[1], ARGV[2], ARGV[3]\n"
	"if redis.call('HEXISTS', p .. 'claim:' .. a, id) == 0 then\n"
	" return 0 end\n"
	"redis.call('ZADD', p .. 'leases', now_ms() + tonumber(ARGV[4]),\n"
	" a .. ' ' .. id)\n"
	"return 1\n",

	/* settle: p, channel, agent, id, ack|keep|release. A message kept
	 * under an id another one was kept under goes beside it, as on
	 * disk: keeping never replaces. */
	NOW
	"local p, a, id, how = ARGV[1], ARGV[3], ARGV[4], ARGV[5]\n"
	"local v = redis.call('HGET', p .. 'claim:' .. a, id)\n"
	"redis.call('ZREM', p .. 'leases', a .. ' ' .. id)\n"
	"if not v then return 0 end\n"
	"redis.call('HDEL', p .. 'claim:' .. a, id)\n"
	"if how == 'keep' then\n"
	" local k = p .. 'kept:' .. a\n"
	" if redis.call('HSETNX', k, id, v) == 0 and\n"
	"    redis.call('HGET', k, id) ~= v then\n"
	"  redis.call('HSET', k, id .. '.' .. now_ms(), v) end\n"
	"elseif how == 'release' then\n"
	" if redis.call('HSETNX', p .. 'new:' .. a, id, v) == 1 then\n"
	"  redis.call('PUBLISH', ARGV[2], id .. ' ' .. a .. '\\n' .. v) end\n"
	"end\n"
	"return 1\n",

	/* expire: p, channel */
	NOW EXPIRE
	"return expire(ARGV[1], ARGV[2])\n",
};

/* clang-format on */
