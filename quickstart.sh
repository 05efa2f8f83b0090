#!/bin/sh
# Quick start: install what is missing, build, install to /usr/local,
# then let two local agents exchange messages in a scratch spool.
set -eu
cd "$(dirname "$0")"
sh .ci/deps
make -j2
SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo
$SUDO make install PREFIX=/usr/local >/dev/null
export BACKCHANNEL_HOME="$(mktemp -d)/backchannel"
echo "== a scratch spool at $BACKCHANNEL_HOME"
set -x
bch init alice
BACKCHANNEL_AGENT=bob bch init bob
bch send @bob "the API schema changed, please rebase" --ref src/api.ts
BACKCHANNEL_AGENT=bob bch inbox
BACKCHANNEL_AGENT=bob bch drain
BACKCHANNEL_AGENT=bob bch send @alice "rebased, tests green" --urgent
bch drain --brief
bch inbox
