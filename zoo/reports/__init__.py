"""Results people look at: the runs table (`zoo runs`), the HTML report and the leaderboard (`zoo report`).

Nothing here imports torch at module level: `zoo runs` reads run folders and bundles as files.
"""
