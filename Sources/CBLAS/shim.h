#ifndef SKEIN_CBLAS_SHIM_H
#define SKEIN_CBLAS_SHIM_H
#include <cblas.h>
#endif
