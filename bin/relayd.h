/* relayd: what the parts of bch-relayd share — the relay's state (struct
 * relayd), a connection's (struct conn), and the few calls between the
 * relay proper (bch-relayd.c), its connections (relayd-conn.c) and its
 * room (relayd-room.c). Nothing here is for a second program. */
#ifndef BCH_RELAYD_H
#define BCH_RELAYD_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

#include "buf.h"
#include "cli.h"
#include "http.h"
#include "relay.h"
#include "tls.h"

#define BUCKETS 4096       /* SSE readers by agent, for shared arrivals */

struct queued;

struct conn {
	int fd;
	char peer[64];
	struct buf in, out;
	struct http_parse parse; /* how far the request at in's front got */
	size_t out_off;
	time_t since;   /* first byte of the current request, or start of
	                 * idleness */
	time_t last_tx; /* SSE: last write */
	time_t out_at;  /* output owed since, or last written: its deadline */
	int sse;
	int closing; /* close once out is flushed */
	int eof;     /* the peer sends no more: no longer read */
	int notified; /* TLS: close_notify queued, the session is over */
	int want_out; /* output waits for a writable socket: plain text,
	               * or over TLS records in the engine */
	int rest_now; /* TLS: a new stream, to rest as soon as it is idle */
	int full;     /* input held back to its limit: not read meanwhile */
	int sniffed;  /* its first byte was looked at (the wrong scheme?) */
	int unread;   /* refused with input still to come: lingers at its
	               * close (relayd-refuse.c) */
	int lingering; /* its answers are out and its sending side shut:
	                * what comes is dropped till it closes (since) */
	size_t linger_left; /* bytes it may still send while lingering */
	struct conn *lprev, *lnext; /* lingering: oldest first (d->lhead) */
	char agent[NAME_MAX_LEN + 1];
	struct tls_conn *tls; /* NULL for plain HTTP */
	struct conn *prev, *next;
	struct conn *same; /* next SSE reader in its agent's bucket */
	struct conn *pnext, **pprev; /* on the list of output to flush */
	struct queued *q; /* its send, queued: no request after it till then */
	char **bl;        /* SSE: the backlog's files still to send */
	size_t nbl, ibl;  /* how many, and the next one */
	struct buf later; /* SSE: what arrived while the backlog goes out */
};

/* A send queued on a shared spool (relay_send_done), to answer to k. */
struct queued {
	struct queued *next;
	struct conn *k; /* NULL once the client has gone */
	struct msg *m;
	char agent[NAME_MAX_LEN + 1];
	char peer[64];
	int keepalive;
};

/* The SSE event last built from a file, kept for the other inboxes the
 * same file was linked into (a channel's fan-out): the same name, inode,
 * size and mtime are the same bytes, as files in new/ never change. */
struct last_event {
	char name[ID_MAX_LEN + 8];
	struct stat st;
	struct buf ev;
	int ok;
};

struct watch; /* an inbox watched with inotify: relayd-watch.c */

struct relayd {
	struct cli c;
	struct relay r;
	struct http_limits lim;
	struct tls_server *tls;
	int ep, lfd, ino;
	struct conn *conns;
	struct conn *pending; /* output to flush before the next wait */
	struct conn *readers[BUCKETS]; /* SSE connections by agent */
	size_t nconns, maxconns;
	struct conn *lhead, *ltail; /* lingering, oldest first: a slot they
	                             * hold goes to a new connection */
	struct conn *dropped; /* closed this round: freed at its end */
	struct watch *watches; /* sorted by wd, the lost ones (-1) first */
	size_t nwatches;
	size_t wnext;          /* the next to check: watch_tick() */
	struct last_event last;
	struct buf arrival; /* the event of the last arrival: arrival_event() */
	char arrival_id[ID_MAX_LEN + 1];
	int evfd;          /* a shared spool's arrivals, -1 when none */
	unsigned evgen;
	int drop_sse;      /* arrivals were missed: SSE clients reconnect */
	struct queued *qhead, **qtail; /* sends queued this round */
	volatile sig_atomic_t stop;
};

/* bch-relayd.c, the relay proper. */

/* The list of SSE readers that agent's are on, shared with the agents
 * whose names hash alike (so compare k->agent), linked by k->same. */
struct conn **sse_bucket(struct relayd *d, const char *agent);

/* Answer the sends queued on a shared spool, in order, and go on with
 * the requests their clients sent after them. */
void settle_sends(struct relayd *d);

/* Answer every whole request at the front of k->in; the answers are
 * queued with conn_send(). */
void process_requests(struct relayd *d, struct conn *k);

/* relayd-conn.c, the connections. */

/* Open k's event stream: head, then agent's unread messages, sent a
 * slice at a time as the stream drains, ahead of what arrives meanwhile.
 * 0, or -1 when they cannot be listed (nothing is sent). */
int stream_start(struct relayd *d, struct conn *k, const char *agent,
    const struct buf *head);

/* Does k owe its client so much that its next request waits till the
 * client reads? (Pipelined requests are answered as their answers go
 * out, not all at once into memory.) */
int conn_held(const struct conn *k);

/* Queue n bytes for k; they go out in flush_pending(). */
void conn_send(struct relayd *d, struct conn *k, const char *p, size_t n);

/* Close k and free what it holds, but not k itself: off its SSE
 * bucket, the lingering and flush lists, d->conns and epoll. */
void conn_unlink(struct relayd *d, struct conn *k);

/* conn_unlink(), then k freed. */
void conn_close(struct relayd *d, struct conn *k);

/* Close k once it has put out what it owes (a stream: nothing more);
 * over TLS a close_notify ends the session first. */
void conn_end(struct relayd *d, struct conn *k);

/* Write what conn_send() queued, closing connections done or gone; the
 * loop calls it after each round of events, before it waits again. */
void flush_pending(struct relayd *d);

/* The same for the SSE streams alone, in the middle of a request; it
 * closes none (those gone are left to flush_pending()). */
void flush_streams(struct relayd *d);

/* epoll's events ev for k: read, answer, write; k may be closed. */
void on_conn(struct relayd *d, struct conn *k, uint32_t ev);

/* Accept every connection waiting on d->lfd; past d->maxconns the
 * oldest lingering connection makes room, and when none lingers the
 * new one is shed. */
void on_accept(struct relayd *d);

/* relayd-refuse.c, connections refused as a whole. */

/* The wrong scheme for k's port, told by its first byte (looked at once,
 * with MSG_PEEK): answered with a 400 naming the right one; then k is
 * plain HTTP, closing. */
void sniff_scheme(struct relayd *d, struct conn *k);

/* k is done: closed, or when it was refused with input still to come
 * (k->unread), its sending side shut and left to linger. */
void conn_finish(struct relayd *d, struct conn *k);

/* Read and drop what a lingering k sends, a slice a round; closed once
 * the client closes or has sent too much. */
void conn_linger(struct relayd *d, struct conn *k);

/* Take lingering k off d's list of them (conn_close()). */
void linger_del(struct relayd *d, struct conn *k);

/* Close k now, but free it at the round's end (conns_reap()), as this
 * round's epoll events may still name it: they are then ignored. */
void conn_drop(struct relayd *d, struct conn *k);

/* Free what conn_drop() closed; the loop calls it after each round of
 * events. */
void conns_reap(struct relayd *d);

/* relayd-arrive.c, arrivals to SSE streams. */

/* Push what inotify reports in watched inboxes to their SSE readers. */
void on_inotify(struct relayd *d);

/* spool->stored for the files: push a message being stored to its
 * recipients' streams before it is linked into their inboxes. */
void push_stored(void *arg, const char *id, char **rcpt, size_t n,
    const char *json, size_t len);

/* A shared spool's arrivals are readable: push them; (re)subscribe. */
void on_arrivals(struct relayd *d);

/* Is the relay subscribed to a shared spool's arrivals? Tries once if
 * not. */
int subscribed(struct relayd *d);

/* Drop every SSE client: they reconnect and are sent what is unread. */
void drop_sse(struct relayd *d);

/* Add fd to the event loop, readable, with tag as its data; -1 with
 * errno on failure. */
int watch_fd(struct relayd *d, int fd, void *tag);

/* relayd-watch.c, the inotify watches on inboxes with SSE readers. */

/* Watch agent's new/, for a stream about to open: made, or checked and
 * made again when new/ was (agent's other streams are then closed if
 * mail came in unseen); lost till new/ is there, if it is not. */
void watch_agent(struct relayd *d, const char *agent);

/* The agent whose new/ wd watches, or NULL. */
const char *watched(struct relayd *d, int wd);

/* An event says wd's watch may be gone (IN_IGNORED, IN_DELETE_SELF,
 * IN_MOVE_SELF, IN_UNMOUNT): check it, and make it again if new/ is. */
void watch_gone(struct relayd *d, int wd);

/* Once a second: the lost watches of agents with readers made again
 * once their new/ is there (those without readers forgotten), and a
 * slice of the others checked for a new/ put in place without event. */
void watch_tick(struct relayd *d);

/* relayd-room.c, the room. */

/* The room token into out: --token (tok), --token-file (file),
 * BACKCHANNEL_ROOM_TOKEN, else <home>/room-token, made on first start.
 * Exits when there is none to be had. */
void room_token(struct relayd *d, const char *tok, const char *file,
    char *out, size_t outsz);

/* d->c.sp: the shared spool at url (--spool), its password read from
 * pwfile, else REDIS_PASSWORD. Exits when it cannot be opened. */
void open_redis(struct relayd *d, const char *url, const char *pwfile);

/* relayd-start.c, the start. */

/* What the command line asks for. */
struct opts {
	const char *listen, *tok, *tokfile, *cert, *key, *spool, *pwfile, *home;
	int port, notify, maxconns_asked;
	double rate;
};

/* The command line into o (d->maxconns too); usage errors exit. */
void relayd_opts(struct relayd *d, int argc, char **argv, struct opts *o);

/* --home dir (if given) as BACKCHANNEL_HOME, made absolute. */
void relayd_home(struct cli *c, const char *home);

/* Open the spool and the room, load the certificate, listen, and make
 * the event loop's descriptors. Exits on failure. */
void relayd_start(struct relayd *d, const struct opts *o);

/* Say where the relay listens, and that it is ready, to s6 too. */
void relayd_ready(struct relayd *d, const struct opts *o);

#endif
