// Drive bch-mcp with the official MCP TypeScript SDK client over stdio:
// connect, list the tools, send a message as alice and claim it as bob.
// The SDK checks each structuredContent against the tool's outputSchema.
// usage: node client.mjs /path/to/bch-mcp   (BACKCHANNEL_HOME in the env)
import assert from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { LATEST_PROTOCOL_VERSION } from "@modelcontextprotocol/sdk/types.js";

const server = process.argv[2];
const TOOLS = ["bch_agents", "bch_channels", "bch_inbox", "bch_peek", "bch_read",
	"bch_send", "bch_subscribe", "bch_unsubscribe", "bch_whoami"];

async function connect(agent) {
	const transport = new StdioClientTransport({
		command: server,
		args: [],
		env: { ...process.env, BACKCHANNEL_AGENT: agent },
		stderr: "inherit",
	});
	const client = new Client({ name: "bch-sdk-test", version: "1.0.0" });
	await client.connect(transport);
	return client;
}

const alice = await connect("alice");
assert.equal(alice.getServerVersion().name, "backchannel");
assert.ok(alice.getServerCapabilities().tools, "tools capability");
assert.match(alice.getInstructions(), /untrusted/);

const { tools } = await alice.listTools();
assert.deepEqual(tools.map((t) => t.name).sort(), TOOLS);
for (const t of tools) {
	assert.equal(t.inputSchema.type, "object", t.name);
	assert.equal(t.outputSchema?.type, "object", t.name);
	assert.ok(t.description.length > 40, t.name);
}

const who = await alice.callTool({ name: "bch_whoami", arguments: {} });
assert.deepEqual(who.structuredContent,
	{ agent: "alice", via: process.env.BACKCHANNEL_URL || "local spool" });

const sent = await alice.callTool({
	name: "bch_send",
	arguments: { target: "@bob", body: "hello from the SDK\n$(touch pwned)",
		priority: "urgent", refs: ["src/a.ts"], thread: "t1" },
});
assert.notEqual(sent.isError, true, sent.content[0].text);
assert.match(sent.content[0].text, /^sent [0-9a-f]{8} to @bob \(1 recipient\)$/);
assert.equal(sent.structuredContent.recipients, 1);
const id = sent.structuredContent.message.id;

const bad = await alice.callTool({ name: "bch_send", arguments: { target: "@carol", body: "x" } });
assert.equal(bad.isError, true);
assert.match(bad.content[0].text, /unknown agent "carol"/);

await assert.rejects(alice.callTool({ name: "bch_nope", arguments: {} }),
	(e) => e.code === -32602 && /Unknown tool/.test(e.message));
await alice.ping();
await alice.close();

const bob = await connect("bob");
const peek = await bob.callTool({ name: "bch_peek", arguments: {} });
assert.equal(peek.structuredContent.messages.length, 1);

const inbox = await bob.callTool({ name: "bch_inbox", arguments: {} });
assert.notEqual(inbox.isError, true);
assert.equal(inbox.structuredContent.messages.length, 1);
const m = inbox.structuredContent.messages[0];
assert.equal(m.id, id);
assert.equal(m.from, "alice");
assert.equal(m.to, "@bob");
assert.equal(m.body, "hello from the SDK\n$(touch pwned)");
assert.equal(m.priority, "urgent");
assert.equal(m.thread, "t1");
assert.deepEqual(m.refs, ["src/a.ts"]);
assert.equal(inbox.content[0].type, "text");
assert.match(inbox.content[0].text, /^\[backchannel\] 1 message\(s\) for bob:/);
assert.match(inbox.content[0].text, /untrusted text from another agent/);

const again = await bob.callTool({ name: "bch_inbox", arguments: {} });
assert.deepEqual(again.structuredContent.messages, []);
await bob.close();

console.log(`ok: ${tools.length} tools over protocol ${LATEST_PROTOCOL_VERSION}, send and inbox end to end`);
