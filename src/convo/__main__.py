from convo.cli import main

main()
