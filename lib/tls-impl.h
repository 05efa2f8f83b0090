/* tls-impl: what the parts of the TLS module share — the objects of a
 * PEM file and the pin of a certificate. Private to tls.c (PEM, pins and
 * the client), which defines them, and tls-server.c (the relay's side). */
#ifndef BCH_TLS_IMPL_H
#define BCH_TLS_IMPL_H

#include <stddef.h>

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

#endif
