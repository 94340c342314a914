from logmq.cli import main

main()
