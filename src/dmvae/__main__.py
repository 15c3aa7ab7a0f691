from dmvae.cli import main

raise SystemExit(main())
