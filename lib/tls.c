/* tls: BearSSL glue for the client side. PEM loading (shared with
 * tls-server.c through tls-impl.h), key pins, trust anchors from a CA
 * bundle, a pinned-key X.509 engine and the blocking client. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bearssl.h>

#include "hash.h"
#include "io.h"
#include "tls-impl.h"
#include "tls.h"

#define CA_BUNDLE "/etc/ssl/certs/ca-certificates.crt"

static void
pem_append(void *ctx, const void *p, size_t n)
{
	buf_add(ctx, p, n);
}

int
tls_pem_read(const char *file, struct pem_obj **objs, size_t *nobjs,
    struct err *e)
{
	br_pem_decoder_context pc;
	struct buf text = BUF_INIT, cur = BUF_INIT;
	size_t off = 0;
	int inobj = 0;

	*objs = NULL;
	*nobjs = 0;
	if (io_readfile(AT_FDCWD, file, 8 << 20, &text) < 0) {
		buf_free(&text);
		return err_sys(e, "cannot read %s", file);
	}
	br_pem_decoder_init(&pc);
	while (off < text.len) {
		off += br_pem_decoder_push(&pc, text.p + off, text.len - off);
		switch (br_pem_decoder_event(&pc)) {
		case BR_PEM_BEGIN_OBJ:
			*objs = xrealloc(*objs, (*nobjs + 1) * sizeof **objs);
			memset(&(*objs)[*nobjs], 0, sizeof **objs);
			snprintf((*objs)[*nobjs].name, sizeof (*objs)->name, "%s",
			    br_pem_decoder_name(&pc));
			buf_reset(&cur);
			br_pem_decoder_setdest(&pc, pem_append, &cur);
			inobj = 1;
			break;
		case BR_PEM_END_OBJ:
			if (inobj) {
				(*objs)[*nobjs].data = xmalloc(cur.len + 1);
				memcpy((*objs)[*nobjs].data, cur.p, cur.len);
				(*objs)[*nobjs].len = cur.len;
				(*nobjs)++;
			}
			inobj = 0;
			break;
		case BR_PEM_ERROR:
			buf_free(&text);
			buf_free(&cur);
			return err_set(e, BCH_PERM, "%s is not valid PEM", file);
		}
	}
	buf_free(&text);
	buf_free(&cur);
	if (!*nobjs)
		return err_set(e, BCH_PERM, "%s holds no PEM object", file);
	return 0;
}

void
tls_pem_free(struct pem_obj *o, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(o[i].data);
	free(o);
}

/* One DER element of the n bytes at p: its tag, where its contents
 * start and how long they are, and its whole length. -1 if it is not
 * one that fits (a certificate's outer elements have one-byte tags). */
static int
der_next(const unsigned char *p, size_t n, unsigned *tag,
    const unsigned char **body, size_t *blen, size_t *whole)
{
	size_t len, head = 2, i, k;

	if (n < 2 || (p[0] & 0x1f) == 0x1f)
		return -1;
	*tag = p[0];
	len = p[1];
	if (len & 0x80) {
		k = len & 0x7f;
		if (k == 0 || k > 4 || n < 2 + k)
			return -1;
		for (len = 0, i = 0; i < k; i++)
			len = len << 8 | p[2 + i];
		head += k;
	}
	if (len > n - head)
		return -1;
	*body = p + head;
	*blen = len;
	*whole = head + len;
	return 0;
}

/* The pin of a certificate: the hex sha256 of its SubjectPublicKeyInfo
 * DER, as `openssl x509 -pubkey | openssl pkey -pubin -outform der |
 * sha256sum` gives it (curl's --pinnedpubkey, in hex). The algorithm and
 * each field's length are in what is hashed, so no key of another type
 * or another split of the same bytes has the same pin. In the
 * Certificate, tbsCertificate: [0] version (optional), serialNumber,
 * signature, issuer, validity, subject, then subjectPublicKeyInfo. */
int
tls_pin_of_cert(const unsigned char *der, size_t len, char pin[65])
{
	const unsigned char *p, *body;
	size_t n, blen, whole;
	unsigned tag;
	int skip;

	if (der_next(der, len, &tag, &p, &n, &whole) < 0 || tag != 0x30 ||
	    der_next(p, n, &tag, &p, &n, &whole) < 0 || tag != 0x30)
		return -1;
	for (skip = 0; skip < 6; skip++) {
		if (der_next(p, n, &tag, &body, &blen, &whole) < 0)
			return -1;
		if (skip == 0 && tag != 0xa0)
			skip++; /* no version: v1 */
		p += whole;
		n -= whole;
	}
	if (der_next(p, n, &tag, &body, &blen, &whole) < 0 || tag != 0x30)
		return -1;
	hash_sha256_hex(p, whole, pin);
	return 0;
}

int
tls_pin_of_file(const char *certfile, char pin[65], struct err *e)
{
	struct pem_obj *o;
	size_t n;
	int rc;

	if (tls_pem_read(certfile, &o, &n, e) < 0)
		return -1;
	rc = tls_pin_of_cert(o[0].data, o[0].len, pin);
	tls_pem_free(o, n);
	if (rc < 0)
		return err_set(e, BCH_PERM, "%s: cannot decode the certificate",
		    certfile);
	return 0;
}

/* A pinned-key X.509 engine: the chain is not checked against any CA;
 * the leaf's public key must hash to the pin. */
#define LEAF_MAX 65536 /* bytes of a leaf certificate, at most */

struct pinx {
	const br_x509_class *vtable;
	br_x509_decoder_context dc;
	struct buf leaf; /* the leaf certificate's DER, for its pin */
	int leaf_long;   /* over LEAF_MAX: not one we would have pinned */
	int depth;
	br_x509_pkey pkey;
	unsigned char keybuf[1024];
	char pin[65];
	int ok;
};

static void
pinx_start_chain(const br_x509_class **ctx, const char *server_name)
{
	struct pinx *x = (struct pinx *)(void *)ctx;

	(void)server_name;
	x->depth = 0;
	x->ok = 0;
}

static void
pinx_start_cert(const br_x509_class **ctx, uint32_t length)
{
	struct pinx *x = (struct pinx *)(void *)ctx;

	(void)length;
	if (x->depth == 0) {
		br_x509_decoder_init(&x->dc, NULL, NULL);
		buf_reset(&x->leaf);
		x->leaf_long = 0;
	}
}

static void
pinx_append(const br_x509_class **ctx, const unsigned char *buf, size_t len)
{
	struct pinx *x = (struct pinx *)(void *)ctx;

	if (x->depth != 0)
		return;
	if (x->leaf.len + len > LEAF_MAX) {
		x->leaf_long = 1;
		return;
	}
	br_x509_decoder_push(&x->dc, buf, len);
	buf_add(&x->leaf, buf, len);
}

static void
pinx_end_cert(const br_x509_class **ctx)
{
	struct pinx *x = (struct pinx *)(void *)ctx;
	const br_x509_pkey *pk;
	char got[65];

	if (x->depth++ != 0 || x->leaf_long ||
	    !(pk = br_x509_decoder_get_pkey(&x->dc)) ||
	    tls_pin_of_cert((const unsigned char *)x->leaf.p, x->leaf.len,
	    got) < 0)
		return;
	x->ok = hash_equal(got, x->pin, 64);
	/* Keep a copy: the decoder's buffers go away with the next cert. */
	x->pkey = *pk;
	if (pk->key_type == BR_KEYTYPE_EC &&
	    pk->key.ec.qlen <= sizeof x->keybuf) {
		memcpy(x->keybuf, pk->key.ec.q, pk->key.ec.qlen);
		x->pkey.key.ec.q = x->keybuf;
	} else if (pk->key_type == BR_KEYTYPE_RSA &&
	    pk->key.rsa.nlen + pk->key.rsa.elen <= sizeof x->keybuf) {
		memcpy(x->keybuf, pk->key.rsa.n, pk->key.rsa.nlen);
		memcpy(x->keybuf + pk->key.rsa.nlen, pk->key.rsa.e,
		    pk->key.rsa.elen);
		x->pkey.key.rsa.n = x->keybuf;
		x->pkey.key.rsa.e = x->keybuf + pk->key.rsa.nlen;
	} else {
		x->ok = 0;
	}
}

static unsigned
pinx_end_chain(const br_x509_class **ctx)
{
	struct pinx *x = (struct pinx *)(void *)ctx;

	return x->ok ? 0 : BR_ERR_X509_NOT_TRUSTED;
}

static const br_x509_pkey *
pinx_get_pkey(const br_x509_class *const *ctx, unsigned *usages)
{
	const struct pinx *x = (const struct pinx *)(const void *)ctx;

	if (usages)
		*usages = BR_KEYTYPE_KEYX | BR_KEYTYPE_SIGN;
	return x->ok ? &x->pkey : NULL;
}

static const br_x509_class pinx_vtable = {
	sizeof(struct pinx), pinx_start_chain, pinx_start_cert, pinx_append,
	pinx_end_cert, pinx_end_chain, pinx_get_pkey,
};

struct tls_client {
	br_ssl_client_context cc;
	br_x509_minimal_context xc;
	struct pinx px;
	br_sslio_context io;
	br_x509_trust_anchor *ta;
	size_t nta;
	int fd;
	int sys_errno; /* the socket's last failure, 0 for an end of input */
	int timed;            /* reads are held to due */
	struct timespec due;
	int up;               /* the handshake was done */
	int deaf;             /* the relay reads no more: writes dropped */
	unsigned char first[5]; /* the first bytes read: "HTTP/"? */
	size_t nfirst;
	unsigned char iobuf[BR_SSL_BUFSIZE_BIDI];
};

static void
dn_append(void *ctx, const void *p, size_t n)
{
	buf_add(ctx, p, n);
}

static unsigned char *
dupbytes(const unsigned char *p, size_t n)
{
	unsigned char *q = xmalloc(n ? n : 1);

	memcpy(q, p, n);
	return q;
}

/* Trust anchors from a PEM CA bundle, as BearSSL's own tools make them. */
static int
load_anchors(struct tls_client *t, const char *file, struct err *e)
{
	struct pem_obj *o;
	size_t n, i;

	if (tls_pem_read(file, &o, &n, e) < 0)
		return -1;
	t->ta = xcalloc(n, sizeof *t->ta);
	for (i = 0; i < n; i++) {
		br_x509_decoder_context dc;
		struct buf dn = BUF_INIT;
		const br_x509_pkey *pk;
		br_x509_trust_anchor *ta = &t->ta[t->nta];
		br_x509_decoder_init(&dc, dn_append, &dn);
		br_x509_decoder_push(&dc, o[i].data, o[i].len);
		if (!(pk = br_x509_decoder_get_pkey(&dc))) {
			buf_free(&dn);
			continue;
		}
		ta->dn.data = dupbytes((unsigned char *)(dn.p ? dn.p : ""), dn.len);
		ta->dn.len = dn.len;
		ta->flags = br_x509_decoder_isCA(&dc) ? BR_X509_TA_CA : 0;
		ta->pkey = *pk;
		if (pk->key_type == BR_KEYTYPE_RSA) {
			ta->pkey.key.rsa.n = dupbytes(pk->key.rsa.n, pk->key.rsa.nlen);
			ta->pkey.key.rsa.e = dupbytes(pk->key.rsa.e, pk->key.rsa.elen);
		} else {
			ta->pkey.key.ec.q = dupbytes(pk->key.ec.q, pk->key.ec.qlen);
		}
		buf_free(&dn);
		t->nta++;
	}
	tls_pem_free(o, n);
	if (!t->nta)
		return err_set(e, BCH_PERM, "%s holds no usable CA certificate",
		    file);
	return 0;
}

static int
sock_read(void *ctx, unsigned char *p, size_t n)
{
	struct tls_client *t = ctx;

	if (t->timed && io_wait_readable(t->fd, &t->due) < 0) {
		t->sys_errno = errno;
		return -1;
	}
	for (;;) {
		ssize_t r = read(t->fd, p, n);
		if (r < 0 && errno == EINTR)
			continue;
		t->sys_errno = r < 0 ? errno : 0;
		if (r > 0 && t->nfirst < sizeof t->first) {
			size_t k = sizeof t->first - t->nfirst;
			if ((size_t)r < k)
				k = (size_t)r;
			memcpy(t->first + t->nfirst, p, k);
			t->nfirst += k;
		}
		return r <= 0 ? -1 : (int)r;
	}
}

static int
sock_write(void *ctx, const unsigned char *p, size_t n)
{
	struct tls_client *t = ctx;

	if (t->deaf)
		return (int)n;
	for (;;) {
		ssize_t w = write(t->fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		/* Past the handshake, a relay that stops reading has
		 * answered early (a 413 for a body over its limit) and
		 * closed: the rest of the request is dropped, as the plain
		 * client's is, so that the engine stays up to read that
		 * answer. None to read is a lost connection then. */
		if (w < 0 && t->up && (errno == EPIPE || errno == ECONNRESET)) {
			t->deaf = 1;
			return (int)n;
		}
		t->sys_errno = w < 0 ? errno : 0;
		return w <= 0 ? -1 : (int)w;
	}
}

void
tls_engine_modern(br_ssl_engine_context *eng)
{
	static const uint16_t suites[] = {
		BR_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
		BR_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
		BR_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
		BR_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
		BR_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
		BR_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	};

	br_ssl_engine_set_versions(eng, BR_TLS12, BR_TLS12);
	br_ssl_engine_set_suites(eng, suites, sizeof suites / sizeof *suites);
}

struct tls_client *
tls_client_new(const char *host, const char *pin, const char *cafile,
    struct err *e)
{
	struct tls_client *t = xcalloc(1, sizeof *t);

	if (pin && *pin) {
		if (strlen(pin) != 64) {
			err_set(e, BCH_PERM, "bad pin — it is 64 hex characters");
			free(t);
			return NULL;
		}
		br_ssl_client_init_full(&t->cc, &t->xc, NULL, 0);
		t->px.vtable = &pinx_vtable;
		memcpy(t->px.pin, pin, 65);
		br_ssl_engine_set_x509(&t->cc.eng, &t->px.vtable);
	} else {
		if (load_anchors(t, cafile ? cafile : CA_BUNDLE, e) < 0) {
			tls_client_free(t);
			return NULL;
		}
		br_ssl_client_init_full(&t->cc, &t->xc, t->ta, t->nta);
	}
	tls_engine_modern(&t->cc.eng);
	br_ssl_engine_set_buffer(&t->cc.eng, t->iobuf, sizeof t->iobuf, 1);
	if (!br_ssl_client_reset(&t->cc, host, 0)) {
		err_set(e, BCH_TEMP, "TLS: cannot start a session");
		tls_client_free(t);
		return NULL;
	}
	br_sslio_init(&t->io, &t->cc.eng, sock_read, t, sock_write, t);
	return t;
}

void
tls_client_free(struct tls_client *t)
{
	size_t i;

	if (!t)
		return;
	for (i = 0; i < t->nta; i++) {
		free(t->ta[i].dn.data);
		if (t->ta[i].pkey.key_type == BR_KEYTYPE_RSA) {
			free(t->ta[i].pkey.key.rsa.n);
			free(t->ta[i].pkey.key.rsa.e);
		} else {
			free(t->ta[i].pkey.key.ec.q);
		}
	}
	free(t->ta);
	buf_free(&t->px.leaf);
	free(t);
}

static void
tls_error(struct tls_client *t)
{
	int err = br_ssl_engine_last_error(&t->cc.eng);

	/* The socket's own error when it failed (a timeout must not pass
	 * for a reset: a reset is worth another try, a timeout is not). */
	if (err == BR_ERR_IO && t->sys_errno)
		errno = t->sys_errno;
	else
		errno = err >= BR_ERR_X509_OK && err < BR_ERR_X509_OK + 64 ?
		    EPERM : ECONNRESET;
}

int
tls_client_write(struct tls_client *t, int fd, const void *p, size_t n)
{
	int w = 0;

	t->fd = fd;
	/* The first bytes are taken once the handshake is done, before
	 * any is sent: a failure before then sent nothing. */
	if (n && !t->up && (w = br_sslio_write(&t->io, p, n)) > 0)
		t->up = 1;
	if (w < 0 || br_sslio_write_all(&t->io, (const char *)p + w,
	    n - (size_t)w) < 0 || br_sslio_flush(&t->io) < 0) {
		tls_error(t);
		return -1;
	}
	return 0;
}

ssize_t
tls_client_read(struct tls_client *t, int fd, void *p, size_t n)
{
	int r;

	t->fd = fd;
	r = br_sslio_read(&t->io, p, n);
	if (r < 0) {
		if (br_ssl_engine_current_state(&t->cc.eng) == BR_SSL_CLOSED &&
		    br_ssl_engine_last_error(&t->cc.eng) == BR_ERR_OK)
			return 0;
		tls_error(t);
		return -1;
	}
	return r;
}

void
tls_client_due(struct tls_client *t, const struct timespec *due)
{
	t->timed = due != NULL;
	if (due)
		t->due = *due;
}

const char *
tls_client_why(struct tls_client *t)
{
	int err = br_ssl_engine_last_error(&t->cc.eng);

	if (err == BR_ERR_X509_NOT_TRUSTED)
		return t->px.vtable ? "its public key does not match the pin" :
		    "its certificate is not signed by a trusted CA";
	if (err == BR_ERR_X509_BAD_SERVER_NAME)
		return "its certificate is for another name";
	if (err == BR_ERR_X509_EXPIRED)
		return "its certificate has expired or is not yet valid";
	if (err >= BR_ERR_X509_OK && err < BR_ERR_X509_OK + 64)
		return "its certificate does not verify";
	return NULL;
}

int
tls_client_up(const struct tls_client *t)
{
	return t->up;
}

int
tls_client_plain(const struct tls_client *t)
{
	return !t->up && t->nfirst == sizeof t->first &&
	    memcmp(t->first, "HTTP/", sizeof t->first) == 0;
}

int
tls_client_pending(struct tls_client *t)
{
	return (br_ssl_engine_current_state(&t->cc.eng) & BR_SSL_RECVAPP) != 0;
}
