from parla.cli import main

raise SystemExit(main())
