from modelsign.cli import main

raise SystemExit(main())
