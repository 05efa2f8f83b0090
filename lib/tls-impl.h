/* tls-impl: what the parts of the TLS module share — the objects of a
 * PEM file, the pin of a certificate and the protocol policy. Private to tls.c (PEM, pins and
 * the client), which defines them, and tls-server.c (the relay's side). */
#ifndef BCH_TLS_IMPL_H
#define BCH_TLS_IMPL_H

#include <stddef.h>

#include <bearssl.h>

#include "err.h"

/* One object of a PEM file: its name ("CERTIFICATE", "EC PRIVATE KEY")
 * and its bytes, decoded from base64. */
struct pem_obj {
	char name[64];
	unsigned char *data;
	size_t len;
};

/* Decode every object of a PEM file (at most 8 MiB) into *objs, for
 * tls_pem_free. 0 with at least one object, or -1 with e filled. */
int tls_pem_read(const char *file, struct pem_obj **objs, size_t *nobjs,
    struct err *e);
void tls_pem_free(struct pem_obj *o, size_t n);

/* The pin of a DER certificate's public key (hex sha256) into pin[65].
 * 0, or -1 when it does not decode. */
int tls_pin_of_cert(const unsigned char *der, size_t len, char pin[65]);

/* Limit an engine, the relay's or the client's, to TLS 1.2 with ECDHE
 * and AEAD suites (AES-GCM, ChaCha20-Poly1305), for ECDSA and RSA
 * certificates: forward secrecy, and no CBC nor TLS 1.0/1.1. Call after
 * the engine's init, before its reset. */
void tls_engine_modern(br_ssl_engine_context *eng);

#endif
