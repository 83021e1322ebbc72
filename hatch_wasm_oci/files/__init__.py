"""Files written atomically, content digests, bounded reads: the bottom layer.

Every other layer may import it; it imports nothing of this package but ``errors``.
"""
