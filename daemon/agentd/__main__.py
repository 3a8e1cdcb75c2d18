from agentd.cli.cli import main

raise SystemExit(main())
