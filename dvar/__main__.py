from dvar.cli import main

raise SystemExit(main())
