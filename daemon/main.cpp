// The `mqledger` executable; everything lives in the mqledger_daemon library so tests link it.
#include "daemon/cli.h"

#include <exception>
#include <iostream>

int main(int argc, char** argv) {
    try {
        return mqledger::run_cli(std::vector<std::string>(argv + 1, argv + argc));
    } catch (const std::exception& e) {
        std::cerr << "mqledger: fatal: " << e.what() << "\n";
        return 1;
    }
}
