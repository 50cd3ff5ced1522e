from kpod.cli import main

raise SystemExit(main())
