#ifndef UTIL_H
#define UTIL_H
int util_answer(void);
#endif
