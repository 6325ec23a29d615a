from videoconcepts.cli import main

main()
