"""`python -m ptq_validators` is the same as `ptqv`."""

from ptq_validators.cli import main

if __name__ == "__main__":
    main()
