#ifndef SKEIN_CNNG_SHIM_H
#define SKEIN_CNNG_SHIM_H
// nng.h must come before tls.h: tls.h uses NNG_DECL without including nng.h.
#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/pipeline0/push.h>
#include <nng/protocol/pipeline0/pull.h>
#include <nng/protocol/pair1/pair.h>
#include <nng/protocol/pubsub0/pub.h>
#include <nng/protocol/pubsub0/sub.h>
#endif
