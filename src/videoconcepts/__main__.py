from videoconcepts.jobclient import main

main()
