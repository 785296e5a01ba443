from shards_cli.main import main

main()
