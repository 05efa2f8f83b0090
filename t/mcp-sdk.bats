#!/usr/bin/env bats
# bch-mcp with the official MCP TypeScript SDK client (t/mcp-sdk/client.mjs):
# connect over stdio, list the tools, send and claim end to end. Skipped,
# with the reason shown, when node or the SDK cannot be had.
load helper

SDK_DIR=$T_ROOT/t/mcp-sdk
NPM_HOME=$HOME # the user's, for npm's cache and configuration

local_setup() { agents alice bob; }

# sdk_ready: 0 when the SDK is installed in t/mcp-sdk (installing it with
# npm if need be); else print why not and return 1.
sdk_ready() {
	command -v node >/dev/null 2>&1 || { echo "node is not installed (Debian: nodejs)"; return 1; }
	[ -f "$SDK_DIR/node_modules/@modelcontextprotocol/sdk/package.json" ] && return 0
	command -v npm >/dev/null 2>&1 || { echo "npm is not installed (Debian: npm)"; return 1; }
	if ! (cd "$SDK_DIR" && HOME=$NPM_HOME npm install --no-package-lock --no-audit --no-fund \
		--loglevel=error) > "$BATS_TEST_TMPDIR/npm.log" 2>&1; then
		echo "npm install of @modelcontextprotocol/sdk failed: $(grep -m 1 'npm error' "$BATS_TEST_TMPDIR/npm.log" || tail -n 1 "$BATS_TEST_TMPDIR/npm.log")"
		return 1
	fi
}

@test "the official MCP SDK client lists the tools, sends with bch_send and claims with bch_inbox" {
	reason=$(sdk_ready) || skip "MCP SDK client unavailable: $reason"
	run node "$SDK_DIR/client.mjs" "$T_ROOT/bin/bch-mcp"
	assert_success
	assert_output --regexp '^ok: 9 tools over protocol [0-9-]+, send and inbox end to end$'
	[ "$(count_new bob)" -eq 0 ]
	[ ! -e pwned ]
	[ ! -e "$SDK_DIR/pwned" ]
}
