from ge_nas.cli import main

raise SystemExit(main())
