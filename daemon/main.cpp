#include <cstdio>
int main() { std::puts("mqledger: under construction"); return 0; }
