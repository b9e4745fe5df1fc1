"""placeholder"""


def add_flags(parser):
    pass


def bench(args):
    raise NotImplementedError
