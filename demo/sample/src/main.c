#include <stdio.h>

int
main(void)
{
	puts("hello from the demo tree");
	return 0;
}
