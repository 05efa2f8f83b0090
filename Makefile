# backchannel: async messaging for AI coding agents.
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
DOCDIR ?= $(PREFIX)/share/doc/backchannel
CC ?= cc
CFLAGS ?= -O2 -g
# Our own flags stay apart, so CFLAGS=... on the command line adds a
# sanitizer or an optimisation level without dropping the warnings.
BCH_CFLAGS = -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter -Wno-format-truncation -Ilib
LDLIBS ?= -l:libbearssl.a
# The programs are linked statically, as skarnet's are: no ld.so and no
# libc.so pages to fault in, so the prompt hook starts as fast as `true`
# and a 10,000-message drain peaks near 1.3 MiB instead of 2.1 (see
# t/bench/README). STATIC= links them dynamically, as the sanitizer and
# valgrind builds must. glibc's getaddrinfo and getpwuid still read
# /etc/nsswitch.conf, and its files and dns sources are built in; ld warns
# about that on every link, and the link rule drops just that warning
# (a second one in the same function comes without its "in function"
# line). (Not ld's --no-warnings: it also lets an undefined reference
# through, and the program then faults when it calls it.)
STATIC ?= -static
LDQUIET = sed '/in function/{N;/statically linked applications requires at runtime/d;};/: warning: Using .* in statically linked applications requires at runtime/d'
BCH_LDFLAGS = -Wl,--as-needed $(STATIC)

# Every bin/bch-*.c is a program; each links libbch and what it needs.
PROGS = $(patsubst bin/%.c,%,$(wildcard bin/bch-*.c))
SCRIPTS = bch
LIBOBJ = lib/agent.o lib/buf.o lib/claim.o lib/cli.o lib/config.o lib/config-token.o lib/err.o lib/hash.o lib/http.o lib/http-chunked.o lib/http-put.o lib/io.o lib/link.o \
	lib/json.o lib/json-check.o lib/json-scan.o lib/msg.o lib/proc.o lib/queue.o lib/scope.o lib/relay.o lib/show.o lib/spool.o lib/spool-fs.o lib/spool-fs-write.o lib/spool-fs-read.o lib/spool-fs-claim.o lib/spool-fs-wait.o lib/spool-fs-agents.o lib/spool-http.o lib/spool-http-conn.o lib/spool-http-events.o lib/tls.o lib/url.o \
	lib/invite.o lib/edit.o lib/edit-json.o lib/edit-json-style.o lib/edit-text.o lib/install.o lib/wake.o \
	lib/spool-redis.o lib/spool-redis-conn.o lib/spool-redis-url.o lib/spool-redis-lua.o lib/spool-redis-read.o \
	lib/tls-server.o lib/wake-user.o lib/relay-mail.o lib/relay-register.o
# Only the relay speaks to Redis (--spool): hiredis, statically where
# the .a is installed, as BearSSL is, so the other programs stay as they were.
HIREDIS_A := $(shell $(CC) -print-file-name=libhiredis.a)
REDIS_LIBS = $(if $(filter /%,$(HIREDIS_A)),-l:libhiredis.a,-lhiredis)
bin/bch-relayd: LDLIBS += $(REDIS_LIBS)
MAN1 = $(wildcard man/*.1)
MAN7 = $(wildcard man/*.7)
MAN8 = $(wildcard man/*.8)
SHAREDIR ?= $(PREFIX)/share/backchannel
BATS ?= bats

all: $(PROGS:%=bin/%)

lib/libbch.a: $(LIBOBJ)
	$(AR) rcs $@ $(LIBOBJ)

$(LIBOBJ): lib/*.h
lib/%.o: lib/%.c
	$(CC) $(BCH_CFLAGS) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<
# bch-doctor alone is several files, its checks apart by what they look
# at; bin/doctor.h is what they share, nothing a second program needs.
DOCTOR_OBJ = bin/doctor-spool.o bin/doctor-claims.o bin/doctor-relay.o bin/doctor-harness.o bin/doctor-wake.o
bin/bch-doctor: $(DOCTOR_OBJ) bin/doctor.h
bin/doctor-%.o: bin/doctor-%.c bin/doctor.h lib/*.h
	$(CC) $(BCH_CFLAGS) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<
# bch-relayd too: its start, its connections, its room, its arrivals, its
# inotify watches and the connections it refuses whole apart from the
# relay proper;
# bin/relayd.h is what they share.
RELAYD_OBJ = bin/relayd-conn.o bin/relayd-room.o bin/relayd-arrive.o \
    bin/relayd-watch.o bin/relayd-start.o bin/relayd-refuse.o
bin/bch-relayd: $(RELAYD_OBJ) bin/relayd.h
bin/relayd-%.o: bin/relayd-%.c bin/relayd.h lib/*.h
	$(CC) $(BCH_CFLAGS) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<
# bch-setup too: the entries it splices into each harness's files apart
# from finding the harnesses and editing; bin/setup.h is what they share.
SETUP_OBJ = bin/setup-entries.o bin/setup-skill.o
bin/bch-setup: $(SETUP_OBJ) bin/setup.h
bin/setup-%.o: bin/setup-%.c bin/setup.h lib/*.h
	$(CC) $(BCH_CFLAGS) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<
# bch-mcp too: its tools apart from the JSON-RPC framing; bin/mcp.h is
# what they share.
MCP_OBJ = bin/mcp-tools.o bin/mcp-args.o
bin/bch-mcp: $(MCP_OBJ) bin/mcp.h
bin/mcp-%.o: bin/mcp-%.c bin/mcp.h lib/*.h
	$(CC) $(BCH_CFLAGS) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<
bin/%: bin/%.c lib/libbch.a lib/*.h
	$(CC) $(BCH_CFLAGS) $(CPPFLAGS) $(CFLAGS) $(BCH_LDFLAGS) $(LDFLAGS) -o $@ $< $(filter %.o,$^) lib/libbch.a $(LDLIBS) 2>$@.ld || { cat $@.ld >&2; rm -f $@.ld; exit 1; }
	@$(LDQUIET) $@.ld >&2; rm -f $@.ld

check: all
	sh t/run

check-asan:
	$(MAKE) clean
	$(MAKE) all STATIC= CFLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all" LDFLAGS="-fsanitize=address,undefined"
	BCH_SANITIZED=1 ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		sh t/run
	$(MAKE) clean

# valgrind replaces malloc only in a dynamically linked program.
check-valgrind:
	$(MAKE) clean
	$(MAKE) all STATIC=
	sh t/valgrind/run
	$(MAKE) clean

bench: all
	@for b in t/bench/*.sh; do sh $$b || exit 1; done

fuzz:
	$(MAKE) -C t/fuzz run FUZZ_SECONDS=$(FUZZ_SECONDS)

FUZZ_SECONDS ?= 30

lint:
	mandoc -Tlint -Wwarning $(MAN1) $(MAN7) $(MAN8)

install: all
	mkdir -p $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man7 $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(DOCDIR) $(DESTDIR)$(SHAREDIR)
	for p in $(PROGS); do install -m 0755 bin/$$p $(DESTDIR)$(BINDIR)/$$p || exit 1; done
	for p in $(SCRIPTS); do install -m 0755 bin/$$p $(DESTDIR)$(BINDIR)/$$p || exit 1; done
	for m in $(MAN1); do install -m 0644 $$m $(DESTDIR)$(MANDIR)/man1/ || exit 1; done
	for m in $(MAN7); do install -m 0644 $$m $(DESTDIR)$(MANDIR)/man7/ || exit 1; done
	for m in $(MAN8); do install -m 0644 $$m $(DESTDIR)$(MANDIR)/man8/ || exit 1; done
	install -m 0644 SKILL.md README.md LICENSE $(DESTDIR)$(DOCDIR)/
	install -m 0644 SKILL.md $(DESTDIR)$(SHAREDIR)/
	rm -rf $(DESTDIR)$(SHAREDIR)/sv && cp -R sv $(DESTDIR)$(SHAREDIR)/sv

uninstall:
	for p in $(PROGS) $(SCRIPTS); do rm -f $(DESTDIR)$(BINDIR)/$$p; done
	for m in $(MAN1); do rm -f $(DESTDIR)$(MANDIR)/man1/$${m##*/}; done
	for m in $(MAN7); do rm -f $(DESTDIR)$(MANDIR)/man7/$${m##*/}; done
	for m in $(MAN8); do rm -f $(DESTDIR)$(MANDIR)/man8/$${m##*/}; done
	rm -rf $(DESTDIR)$(DOCDIR) $(DESTDIR)$(SHAREDIR)

clean:
	rm -f $(PROGS:%=bin/%) bin/*.o lib/*.o lib/libbch.a
	$(MAKE) -C t/fuzz clean

.PHONY: all check check-asan check-valgrind bench fuzz lint install uninstall clean
