from wireway.cli.main import main

main()
