#include "daemon/version.h"

namespace mqledger {
const char* version() { return MQLEDGER_VERSION; }
} // namespace mqledger
