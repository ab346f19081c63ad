from crowdtui.cli import main

raise SystemExit(main())
