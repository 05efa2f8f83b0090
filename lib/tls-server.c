/* tls-server: the relay's side of TLS, a BearSSL server engine per
 * connection, pumped by the relay's event loop. BearSSL does no I/O of
 * its own, which is what lets the relay keep TLS inside that loop. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <bearssl.h>

#include "tls-impl.h"
#include "tls.h"

struct tls_server {
	/* The engine asks for a record's 5-byte header, then for its body:
	 * read as asked, that is two reads a request. A connection reads
	 * what its socket has into this, one read for all, and hands it to
	 * the engine as asked; what is left when the pump returns is kept
	 * in the connection's spill. */
	unsigned char stage[BR_SSL_BUFSIZE_INPUT];
	br_x509_certificate *chain;
	size_t nchain;
	br_skey_decoder_context key; /* holds the decoded key in place */
	int key_type;
	unsigned issuer_type;
};

/* A connection's record buffers sit in pages of their own, apart from
 * the engine (about 4 KiB), so that tls_conn_rest() can hand them back:
 * 10,000 idle SSE streams would otherwise hold 33 KiB each. */
#define PAGE 4096
#define ROUND(n) (((n) + PAGE - 1) / PAGE * PAGE)
#define OBUF_AT ROUND(BR_SSL_BUFSIZE_INPUT)
#define IOMAP (OBUF_AT + ROUND(BR_SSL_BUFSIZE_OUTPUT))

struct tls_conn {
	br_ssl_server_context sc;
	struct tls_server *srv;
	unsigned char *io; /* IOMAP bytes: input, then output at OBUF_AT */
	int resting;       /* the pages of io were handed back */
	int up;            /* the handshake is done */
	unsigned char *spill; /* read, not yet taken by the engine */
	size_t nspill;
};


/* Whether the public half pk, from the leaf certificate, is that of the
 * private key: a pair that is not would start a relay whose every
 * handshake fails. */
static int
ec_matches(const br_ec_private_key *sk, const br_x509_pkey *pk)
{
	unsigned char q[BR_EC_KBUF_PUB_MAX_SIZE];
	br_ec_public_key pub;

	if (pk->key_type != BR_KEYTYPE_EC || pk->key.ec.curve != sk->curve)
		return 0;
	if (!br_ec_compute_pub(br_ec_get_default(), &pub, q, sk))
		return 0;
	return pub.qlen == pk->key.ec.qlen &&
	    memcmp(pub.q, pk->key.ec.q, pub.qlen) == 0;
}

#define RSA_MAX_BYTES (4096 / 8) /* BearSSL's largest modulus */

/* The modulus is computed from p and q; the exponent is checked by a
 * signature made with the private key and verified with the public one,
 * as br_rsa_compute_pubexp gives 0 for ordinary keys in BearSSL 0.6. */
static int
rsa_matches(const br_rsa_private_key *sk, const br_x509_pkey *pk)
{
	static const unsigned char probe[32] = "backchannel: key matches cert";
	br_rsa_compute_modulus modulus = br_rsa_compute_modulus_get_default();
	br_rsa_pkcs1_sign sign = br_rsa_pkcs1_sign_get_default();
	br_rsa_pkcs1_vrfy vrfy = br_rsa_pkcs1_vrfy_get_default();
	unsigned char n[RSA_MAX_BYTES], sig[RSA_MAX_BYTES], out[sizeof probe];
	br_rsa_public_key pub;
	size_t len;

	if (pk->key_type != BR_KEYTYPE_RSA)
		return 0;
	pub = pk->key.rsa;
	for (; pub.nlen && !*pub.n; pub.n++, pub.nlen--) /* DER's leading 0 */
		;
	len = modulus(NULL, sk);
	if (!len || len > sizeof n || len != pub.nlen ||
	    modulus(n, sk) != len || memcmp(n, pub.n, len) != 0)
		return 0;
	if (!sign(NULL, probe, sizeof probe, sk, sig) ||
	    !vrfy(sig, len, NULL, sizeof out, &pub, out))
		return 0;
	return memcmp(out, probe, sizeof out) == 0;
}

/* Decode the leaf of s->chain: the type of the key that signed it into
 * s->issuer_type (ECDH_* suites need it) and whether it carries the
 * public half of s->key. 0, or -1 with e filled. */
static int
check_leaf(struct tls_server *s, const char *certfile, const char *keyfile,
    struct err *e)
{
	br_x509_decoder_context dc;
	const br_x509_pkey *pk;

	br_x509_decoder_init(&dc, NULL, NULL);
	br_x509_decoder_push(&dc, s->chain[0].data, s->chain[0].data_len);
	pk = br_x509_decoder_get_pkey(&dc);
	if (!pk || br_x509_decoder_last_error(&dc) != 0) {
		err_set(e, BCH_PERM, "%s holds no usable certificate", certfile);
		return -1;
	}
	if (s->key_type == BR_KEYTYPE_EC ?
	    !ec_matches(br_skey_decoder_get_ec(&s->key), pk) :
	    !rsa_matches(br_skey_decoder_get_rsa(&s->key), pk)) {
		err_set(e, BCH_PERM, "the key in %s does not match the "
		    "certificate in %s", keyfile, certfile);
		return -1;
	}
	/* Assume the issuer signs with the same kind of key as the leaf
	 * when the certificate does not say. */
	s->issuer_type = br_x509_decoder_get_signer_key_type(&dc);
	if (!s->issuer_type)
		s->issuer_type = (unsigned)s->key_type;
	return 0;
}

/* Take the certificates of certs into s->chain, in their order. */
static void
take_chain(struct tls_server *s, struct pem_obj *certs, size_t nc)
{
	size_t i;

	s->chain = xcalloc(nc, sizeof *s->chain);
	for (i = 0; i < nc; i++) {
		if (strcmp(certs[i].name, "CERTIFICATE") != 0 &&
		    strcmp(certs[i].name, "X509 CERTIFICATE") != 0)
			continue;
		s->chain[s->nchain].data = certs[i].data;
		s->chain[s->nchain].data_len = certs[i].len;
		certs[i].data = NULL;
		s->nchain++;
	}
}

/* The private key of keys into s: an RSA or EC key, not encrypted. 0,
 * or -1 with e filled. */
static int
load_key(struct tls_server *s, const struct pem_obj *keys, size_t nk,
    const char *keyfile, struct err *e)
{
	size_t i;

	br_skey_decoder_init(&s->key);
	for (i = 0; i < nk; i++) {
		if (strstr(keys[i].name, "ENCRYPTED"))
			return err_set(e, BCH_PERM, "%s holds an encrypted "
			    "private key, and bch-relayd asks for no passphrase "
			    "— decrypt it: openssl pkey -in %s -out KEY.pem",
			    keyfile, keyfile);
		if (strstr(keys[i].name, "PRIVATE KEY")) {
			br_skey_decoder_push(&s->key, keys[i].data, keys[i].len);
			break;
		}
	}
	s->key_type = br_skey_decoder_key_type(&s->key);
	if (s->key_type != BR_KEYTYPE_RSA && s->key_type != BR_KEYTYPE_EC)
		return err_set(e, BCH_PERM, "%s holds no RSA or EC private key "
		    "(PEM)", keyfile);
	return 0;
}

unsigned
tls_server_rsa_bits(const struct tls_server *s)
{
	const br_rsa_private_key *rsa = br_skey_decoder_get_rsa(&s->key);

	return rsa ? (unsigned)rsa->n_bitlen : 0;
}

struct tls_server *
tls_server_new(const char *certfile, const char *keyfile, char pin[65],
    struct err *e)
{
	struct tls_server *s;
	struct pem_obj *certs, *keys;
	size_t nc, nk;
	int rc;

	if (tls_pem_read(certfile, &certs, &nc, e) < 0)
		return NULL;
	if (tls_pem_read(keyfile, &keys, &nk, e) < 0) {
		tls_pem_free(certs, nc);
		return NULL;
	}
	s = xcalloc(1, sizeof *s);
	take_chain(s, certs, nc);
	tls_pem_free(certs, nc);
	rc = load_key(s, keys, nk, keyfile, e);
	tls_pem_free(keys, nk);
	if (rc == 0 && (!s->nchain || tls_pin_of_cert(s->chain[0].data,
	    s->chain[0].data_len, pin) < 0))
		rc = err_set(e, BCH_PERM, "%s holds no usable certificate",
		    certfile);
	if (rc < 0 || check_leaf(s, certfile, keyfile, e) < 0) {
		tls_server_free(s);
		return NULL;
	}
	return s;
}

void
tls_server_free(struct tls_server *s)
{
	size_t i;

	if (!s)
		return;
	for (i = 0; i < s->nchain; i++)
		free(s->chain[i].data);
	free(s->chain);
	free(s);
}

struct tls_conn *
tls_conn_new(struct tls_server *s)
{
	struct tls_conn *t = xcalloc(1, sizeof *t);

	t->srv = s;
	t->io = mmap(NULL, IOMAP, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (t->io == MAP_FAILED) {
		free(t);
		return NULL;
	}
	if (s->key_type == BR_KEYTYPE_RSA)
		br_ssl_server_init_full_rsa(&t->sc, s->chain, s->nchain,
		    br_skey_decoder_get_rsa(&s->key));
	else
		br_ssl_server_init_full_ec(&t->sc, s->chain, s->nchain,
		    s->issuer_type, br_skey_decoder_get_ec(&s->key));
	tls_engine_modern(&t->sc.eng);
	/* A renegotiation would be a handshake in the middle of a stream;
	 * no client of ours asks for one. */
	br_ssl_engine_add_flags(&t->sc.eng, BR_OPT_NO_RENEGOTIATION);
	br_ssl_engine_set_buffers_bidi(&t->sc.eng, t->io, BR_SSL_BUFSIZE_INPUT,
	    t->io + OBUF_AT, BR_SSL_BUFSIZE_OUTPUT);
	if (!br_ssl_server_reset(&t->sc)) {
		tls_conn_free(t);
		return NULL;
	}
	return t;
}

void
tls_conn_free(struct tls_conn *t)
{
	if (!t)
		return;
	munmap(t->io, IOMAP);
	free(t->spill);
	free(t);
}

int
tls_conn_rest(struct tls_conn *t)
{
	br_ssl_engine_context *eng = &t->sc.eng;
	unsigned st = br_ssl_engine_current_state(eng);
	unsigned char *p;
	size_t len;

	if (t->resting)
		return 1;
	if (t->nspill)
		return 0;
	/* Past the handshake, no record to send, no plain text to hand
	 * over, and no part of a record received: the engine will write
	 * both buffers afresh before it reads them again. */
	if (!(st & BR_SSL_SENDAPP) || (st & (BR_SSL_SENDREC | BR_SSL_RECVAPP |
	    BR_SSL_CLOSED)) || !(st & BR_SSL_RECVREC))
		return 0;
	p = br_ssl_engine_recvrec_buf(eng, &len);
	if (p != t->io || len != 5) /* waiting for a record's first byte */
		return 0;
	if (madvise(t->io, IOMAP, MADV_DONTNEED) < 0)
		return 0;
	t->resting = 1;
	return 1;
}

/* Read what fd has into the stage: 1 bytes came (src, *n), 0 none now
 * (TLS_EOF set in *flags when the peer closed its side: the records
 * owed to it can still go), -1 the session is over. */
static int
fill(struct tls_conn *t, int fd, const unsigned char **src, size_t *n,
    int *flags)
{
	ssize_t k;

	for (;;) {
		k = read(fd, t->srv->stage, sizeof t->srv->stage);
		if (k > 0) {
			*src = t->srv->stage;
			*n = (size_t)k;
			return 1;
		}
		if (k == 0) {
			*flags |= TLS_EOF;
			return 0;
		}
		if (errno == EAGAIN)
			return 0;
		if (errno != EINTR)
			return -1;
	}
}

/* Write what records the engine has: 1 some went (TLS_SENT), 0 the
 * socket is full
 * (TLS_WANT_WRITE set in *flags), -1 the peer is gone. */
static int
send_records(br_ssl_engine_context *eng, int fd, int *flags)
{
	unsigned char *p;
	size_t len;
	ssize_t n;

	p = br_ssl_engine_sendrec_buf(eng, &len);
	n = write(fd, p, len);
	if (n > 0) {
		br_ssl_engine_sendrec_ack(eng, (size_t)n);
		*flags |= TLS_SENT;
		return 1;
	}
	if (n < 0 && errno != EAGAIN && errno != EINTR)
		return -1;
	*flags |= TLS_WANT_WRITE;
	return 0;
}

/* Hand the engine plain text from out at *off, as far as it takes it. */
static void
send_app(br_ssl_engine_context *eng, const struct buf *out, size_t *off)
{
	size_t len;
	unsigned char *p = br_ssl_engine_sendapp_buf(eng, &len);

	if (len > out->len - *off)
		len = out->len - *off;
	memcpy(p, out->p + *off, len);
	br_ssl_engine_sendapp_ack(eng, len);
	*off += len;
	br_ssl_engine_flush(eng, 0);
}

/* Feed the engine records: what was read (*src, *nsrc) first, as far as
 * it takes them; the socket is read again once they are all in, and
 * only while *readable (cleared at the peer's EOF). 1 some went in, 0
 * none, -1 the peer is gone. */
static int
feed(struct tls_conn *t, int fd, int *readable, const unsigned char **src,
    size_t *nsrc, int *flags)
{
	br_ssl_engine_context *eng = &t->sc.eng;
	unsigned char *p;
	size_t len;

	if (!*nsrc && *readable) {
		int f = fill(t, fd, src, nsrc, flags);
		if (f < 0)
			return -1;
		*readable = f;
	}
	if (!*nsrc)
		return 0;
	p = br_ssl_engine_recvrec_buf(eng, &len);
	if (len > *nsrc)
		len = *nsrc;
	memcpy(p, *src, len);
	br_ssl_engine_recvrec_ack(eng, len);
	*src += len;
	*nsrc -= len;
	return 1;
}

/* Keep what the engine did not take: the stage is the next
 * connection's. */
static void
keep_spill(struct tls_conn *t, const unsigned char *src, size_t nsrc)
{
	if (src != t->spill) {
		unsigned char *keep = NULL;
		if (nsrc) {
			keep = xmalloc(nsrc);
			memcpy(keep, src, nsrc);
		}
		free(t->spill);
		t->spill = keep;
	}
	t->nspill = nsrc;
}

int
tls_conn_pump(struct tls_conn *t, int fd, int readable, struct buf *in,
    const struct buf *out, size_t *off, int *flags)
{
	br_ssl_engine_context *eng = &t->sc.eng;
	const unsigned char *src = t->spill;
	size_t nsrc = t->nspill;
	int progress = 1, rc = 0, r;

	*flags = 0;
	while (progress) {
		unsigned st = br_ssl_engine_current_state(eng);
		progress = 0;
		if (st & (BR_SSL_SENDAPP | BR_SSL_RECVAPP))
			t->up = 1;
		if (st & BR_SSL_CLOSED) {
			rc = -1;
			break;
		}
		if ((st & BR_SSL_SENDREC) &&
		    (progress = send_records(eng, fd, flags)) < 0) {
			rc = -1;
			break;
		}
		if (st & BR_SSL_RECVAPP) {
			size_t len;
			unsigned char *p = br_ssl_engine_recvapp_buf(eng, &len);
			buf_add(in, p, len);
			br_ssl_engine_recvapp_ack(eng, len);
			progress = 1;
			readable = 0; /* the caller has something to answer */
		}
		if ((st & BR_SSL_SENDAPP) && *off < out->len) {
			send_app(eng, out, off);
			progress = 1;
		}
		if (st & BR_SSL_RECVREC) {
			if ((r = feed(t, fd, &readable, &src, &nsrc, flags)) < 0) {
				rc = -1;
				break;
			}
			progress |= r;
		}
		if (progress)
			t->resting = 0; /* the buffers are in use again */
	}
	keep_spill(t, src, nsrc);
	return rc;
}

void
tls_conn_close(struct tls_conn *t)
{
	br_ssl_engine_close(&t->sc.eng);
}

int
tls_conn_up(const struct tls_conn *t)
{
	return t->up;
}
