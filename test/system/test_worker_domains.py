"""Each pytest-xdist worker past the first takes a ROS domain no one else holds."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from helpers.domains import take_free_domain


def test_workers_take_distinct_domains_no_shell_holds(tmp_path: Path, monkeypatch) -> None:
    """Two takes give two domains, neither the run's own nor one a ros_env.sh shell holds."""
    monkeypatch.setenv('PLANT_DISEASE_DOMAIN_LOCKS', str(tmp_path))
    own = 10 + os.getpid() % 90
    held_by_shell = 10 + (own - 10 + 1) % 90
    # A shell's lock, as ros_env.sh's flock takes it: on its own open file, which a take
    # (another open of the same file) cannot lock while it is held, in this process too.
    with open(tmp_path / f'{held_by_shell}.lock', 'ab') as shell_lock:
        fcntl.flock(shell_lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        first = take_free_domain(avoid=own)
        second = take_free_domain(avoid=own)
        domains = {first.domain, second.domain}
        assert len(domains) == 2 and own not in domains and held_by_shell not in domains
        assert all(10 <= domain <= 99 for domain in domains)
        # Released with its file: the domain is free again for the next worker.
        first.file.close()
        again = take_free_domain(avoid=own)
        assert again.domain == first.domain
        second.file.close()
        again.file.close()
