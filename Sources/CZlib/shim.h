#ifndef SKEIN_CZLIB_SHIM_H
#define SKEIN_CZLIB_SHIM_H
// Only the gz* file API is used; inflateInit2 is a macro Swift cannot import.
#include <zlib.h>
#endif
