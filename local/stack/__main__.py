"""`make up`: the local stack, left running until Ctrl-C."""

from local.stack.local_stack import main

main()
