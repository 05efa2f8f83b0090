/* spool-http: what the parts of the spool over HTTP share — the state of
 * an open spool and its links to the relay. Private to spool-http.c (the
 * operations) and spool-http-conn.c (the transport). */
#ifndef BCH_SPOOL_HTTP_H
#define BCH_SPOOL_HTTP_H

#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include "buf.h"
#include "err.h"
#include "http.h"
#include "link.h"
#include "msg.h"
#include "spool.h"
#include "tls.h"
#include "url.h"

/* An open spool over HTTP, s->impl: a link for requests, one for the
 * event stream, and the id of the last event, sent as Last-Event-ID. */
struct hs {
	struct url url;
	struct link req, ev;
	char last_id[ID_MAX_LEN + 1];
	struct timespec heard; /* when the event stream last brought a whole
	                        * event or comment, or PROGRESS_BYTES more */
	size_t unheard; /* bytes read since heard */
	struct timespec opened; /* when it was last opened */
	int pause_ms; /* before it is opened again, as the last ended at once */
	char cut_id[ID_MAX_LEN + 1]; /* where the last listing was cut, or
	                              * "": s->more */
	struct buf arrived; /* s->keep_arrived: the messages the last
	                     * hs_wait() read, one JSON a line */
};

/* Items as a listing gives them (raw kept), made by hs_add_item() from
 * each message's JSON p, n; a malformed one is skipped with a warning.
 * 0. */
struct items_acc {
	struct spool *s;
	struct spool_item *it;
	size_t n;
};
int hs_add_item(void *acc, const char *p, size_t n);

/* The transport, in spool-http-conn.c. */

/* spool-http-conn.c, for the event stream too: open l to the relay
 * (0, or -1 with e filled), to be held to BACKCHANNEL_TIMEOUT with
 * link_due() (link.h); the Host header of a request; the error of a 3xx
 * answer to path. */
int hs_link_open(struct spool *s, struct link *l, struct err *e);
void hs_host_put(struct buf *q, const struct url *u);
void hs_redirect_err(struct spool *s, const char *path,
    const struct http_resp *r, struct err *e);

/* Send method path (token as the bearer, body as JSON when not NULL) on
 * the keep-alive link; with HS_RETRY in flags, a failure that may pass
 * (no connection, a reset, a 5xx, a 429) is tried again after a growing
 * pause, cfg->retries times. A relay that does not answer within
 * BACKCHANNEL_TIMEOUT is not asked again, with or without HS_RETRY:
 * BCH_TEMP, e->status 504.
 * With HS_CUT, a 2xx whose body is over 8 MiB comes back cut to its
 * first 8 MiB, r->truncated set, for a caller that can use a part.
 * Without a token only /v1/register is sent. 0 with r filled, its
 * status a 2xx and r->body not NULL, for the caller to free
 * (http_resp_free); or -1 with e (which may be NULL) filled and
 * e->status set: a 4xx other than 429 is BCH_PERM with the relay's own
 * message, a 3xx BCH_PERM naming where it leads, and an event stream or
 * a 1xx a malformed answer (BCH_TEMP, 502). */
#define HS_RETRY 1
#define HS_CUT 2
int hs_call(struct spool *s, const char *method, const char *path,
    const char *token, const struct buf *body, struct http_resp *r, int flags,
    struct err *e);

/* The agent's bearer token, or "" when it has none yet. */
const char *hs_token(struct spool *s);

/* spool_wait() on the relay's event stream (spool.h says what it
 * promises). A call with no stream open opens one and returns 1, so the
 * caller lists; a lost stream is opened again at once, and 1 returned.
 * A relay away returns after a pause of up to 2 s: 1 if no stream was
 * ever opened (the caller's listing then says so), else 0, and the next
 * call tries again, so a relay restart does not end a watch. A stream
 * silent for 75 s, keepalives included, is taken for lost, and so is a
 * TLS record begun and not whole within BACKCHANNEL_TIMEOUT; one not
 * whole at the caller's timeout closes the stream, and the call returns
 * 0 (the next opens it again). */
int hs_wait(struct spool *s, const char *agent, int timeout_ms,
    struct err *e);

/* spool_arrived(): the messages in h->arrived, which it empties. */
void hs_arrived(struct spool *s, struct spool_item **items, size_t *n);

#endif
