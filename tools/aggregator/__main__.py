from tools.aggregator.run import main

main()
