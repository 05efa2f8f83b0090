/* invite: the bch1- invite of PROTOCOL.md 6 and the base64url under it. */
#ifndef BCH_INVITE_H
#define BCH_INVITE_H

#include <stddef.h>

#include "buf.h"
#include "err.h"

#define INVITE_PREFIX "bch1-"
#define INVITE_MAX 8192 /* bytes of an invite string we accept */
/* ...and of one wrapped over lines (a chat's, a mail's), its white
 * space counted too */
#define INVITE_WRAPPED_MAX (2 * INVITE_MAX)
#define INVITE_CHANNELS 64 /* channels an invite may name */
/* The shortest room token bch-relayd accepts: a shorter one (an empty
 * --token from an unset variable, say) would let anyone register. */
#define ROOM_TOKEN_MIN 16

struct invite {
	char *url;      /* the relay, http:// or https:// */
	char *token;    /* the room token */
	char **channels; /* "#proj", ... */
	size_t nchannels;
	char *room;     /* NULL when absent */
	char *pin;      /* lowercase hex sha256 of the relay's key, or NULL */
};

/* Append the base64url of p[0..n), without padding. */
void b64url_encode(struct buf *b, const void *p, size_t n);

/* Decode base64url (no padding, or '=' padding) s[0..n) into out.
 * 0, or -1 if a character is outside the alphabet or the length is
 * impossible. */
int b64url_decode(const char *s, size_t n, struct buf *out);

/* Append "bch1-" and the encoded JSON object of inv (url, token,
 * channels, room, pin; absent ones omitted). */
void invite_encode(const struct invite *inv, struct buf *b);

/* Decode and check an invite string (surrounding white space ignored):
 * the prefix, base64url, a JSON object with a relay url and a room
 * token, valid channel names, a 64-hex pin. 0, or -1 with e filled
 * (BCH_PERM, one line saying what to do). Free with invite_free(). */
int invite_decode(const char *s, struct invite *inv, struct err *e);

void invite_free(struct invite *inv);

/* Is url an http:// or https:// URL the client can use (url_parse: a
 * host, a port from 1 to 65535), with no user:password@ and no white
 * space? */
int invite_url_valid(const char *url);

/* Is pin 64 hex digits? */
int invite_pin_valid(const char *pin);

/* Turn "#dev" or "dev" into "#dev" in out (size NAME_MAX_LEN + 2).
 * -1 when the name is not valid. */
int invite_channel(const char *in, char *out, size_t outsz);

#endif
