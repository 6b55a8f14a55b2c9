from netpathd.app import main

raise SystemExit(main())
