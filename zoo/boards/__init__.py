"""What people read and look at: leaderboards (markdown, CSV), the HTML report, comparison pictures and
training curves."""
