"""`python -m imagefactory` is the same CLI as `imagefactory` and `klab`."""

from imagefactory.cli import main

raise SystemExit(main())
