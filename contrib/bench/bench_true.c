/* bench_true: the trivial program whose start-up the overhead benchmark times. */
int main(void)
{
	return 0;
}
