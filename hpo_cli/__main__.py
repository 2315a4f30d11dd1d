from hpo_cli.cli import main

raise SystemExit(main())
