// The `mqledger` executable; everything lives in the mqledger_daemon library so tests link it.
#include "daemon/cli.h"

#include <exception>
#include <iostream>

#include <malloc.h>

int main(int argc, char** argv) {
    // glibc gives each thread that allocates concurrently its own arena (up to 8 per core), and
    // an arena keeps the pages of its peak: with 64 workers, the writer and the timer thread, a
    // large timer pass left the daemon at 3-4 times the memory it uses. Four arenas keep the
    // peak shared at no measurable cost on 2 cores (bench/README.md).
    ::mallopt(M_ARENA_MAX, 4);
    try {
        return mqledger::run_cli(std::vector<std::string>(argv + 1, argv + argc));
    } catch (const std::exception& e) {
        std::cerr << "mqledger: fatal: " << e.what() << "\n";
        return 1;
    }
}
